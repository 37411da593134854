"""Every bad input of the corpus (tests/support/bad_inputs/) is one `error:` line on stderr, nothing else,
with its exit code.

The cases run through the CLI's entry point (`cli.main.main`) in this process, not a subprocess each: the
whole corpus takes seconds. The environment is a clean SHADOWLAB_* one plus the case's, the working folder
a fresh one holding the case's files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main
from shadowlab.db import parse_database_url
from tests.support.bad_inputs import BAD_INPUTS, SPEC, SQLITE, BadInput


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run_main(argv: tuple[str, ...], env: dict[str, str], cwd: Path, patch: pytest.MonkeyPatch) -> Outcome:
    """`shadowlab ARGV` in this process, as the console script runs it."""
    for name in [n for n in os.environ if n.startswith("SHADOWLAB_")]:
        patch.delenv(name)
    for name, value in env.items():
        patch.setenv(name, value)
    patch.chdir(cwd)
    patch.setattr(sys, "argv", ["shadowlab", *argv])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # commands point the root logger at this stderr
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A migrated SQLite file, and one holding experiment `x`, made once and copied into each case."""
    folder = tmp_path_factory.mktemp("bad-input-databases")
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        assert run_main(("db", "upgrade"), SQLITE, folder, patch).code == 0
        shutil.copy(folder / "x.db", folder / "migrated.db")
        created = run_main(("experiment", "create", "spec.yaml"), SQLITE, folder, patch)
        assert created.code == 0, created.err
    return {"migrated": folder / "migrated.db", "experiment": folder / "x.db"}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_a_bad_input_ends_in_one_error_line(
    case: BadInput,
    tmp_path: Path,
    databases: dict[str, Path],
    taken_port: int,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content, encoding="utf-8")
    if case.db != "none":
        shutil.copy(databases[case.db], tmp_path / "x.db")
    ports = {"free_port": _free_port(), "taken_port": taken_port}
    argv = tuple(arg.format(**ports) for arg in case.argv)
    env = {name: value.format(**ports) for name, value in case.env.items()}
    if case.own_process:
        done = cli(*argv, env=env, cwd=tmp_path)
        outcome = Outcome(done.returncode, done.stdout, done.stderr)
    else:
        outcome = run_main(argv, env, tmp_path, monkeypatch)
    errors = [line for line in outcome.err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in outcome.out + outcome.err
    assert outcome.code == case.code, outcome.err
    assert len(errors) == 1 and outcome.err.strip().splitlines() == errors, outcome.err  # nothing else
    assert case.needle in errors[0]
    assert "Value error" not in errors[0]  # pydantic's prefix: the line is ours
    assert "s3cret-pw" not in outcome.out + outcome.err  # a database URL is shown without its password


def test_the_corpus_holds_at_least_64_distinct_bad_inputs() -> None:
    assert len({case.name for case in BAD_INPUTS}) == len(BAD_INPUTS) >= 64


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:pw@db.internal:5432/shadowlab",
        "postgresql://u:pw@10.0.0.7/shadowlab",  # the driver is implied
        "postgresql+psycopg://u:pw@[::1]:5432/shadowlab",  # IPv6 in brackets
        "postgresql+psycopg://u:pw@shadowlab_db/shadowlab",  # a compose service name with '_'
        "postgresql+psycopg://u:pw@db1,db2.internal/shadowlab",  # libpq's fallback hosts
        "postgresql+psycopg://u@/shadowlab?host=/var/run/postgresql",  # a Unix socket
        "sqlite:///shadowlab.db",
    ],
)
def test_a_database_url_of_a_shape_libpq_takes_is_not_refused(url: str) -> None:
    assert parse_database_url(url).drivername in ("postgresql+psycopg", "sqlite")
