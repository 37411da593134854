"""An experiment created and started but with no replays yet: "no data yet" everywhere, never a crash.

A CI gate right after `experiment start`, or any experiment after retention, used to raise IndexError.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from shadowlab import migrate
from shadowlab.db import create_engine
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.postgres
CliRunner = Callable[..., subprocess.CompletedProcess[str]]
NOTE = "no replays yet: nothing to {} until `shadowlab replay fresh` has run"


@dataclass(frozen=True)
class Fresh:
    """A migrated database holding experiment `fresh` (with a plan, created and started, no replays)."""

    url: str
    tmp: Path
    cli: CliRunner

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI on this database; never a traceback."""
        done = self.cli(*args, env={"SHADOWLAB_DATABASE_URL": self.url}, cwd=self.tmp)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    def snapshots(self) -> list[tuple[int, str | None]]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                query = sa.text("select n_requests, verdict from analysis_snapshots")
                return [(int(n), verdict) for n, verdict in conn.execute(query)]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def fresh(postgres_url: str, tmp_path_factory: pytest.TempPathFactory, cli: CliRunner) -> Iterator[Fresh]:
    with fresh_database(postgres_url) as url:
        yield _started(url, tmp_path_factory.mktemp("fresh"), cli)


def _started(url: str, tmp_path: Path, cli: CliRunner) -> Fresh:
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    spec = {
        "name": "fresh",
        "control": {"name": "control", "provider": "anthropic", "model": "claude-haiku-4-5"},
        "candidates": [{"name": "cand", "provider": "openai", "model": "gpt-4o-mini"}],
        "allowed_providers": ["anthropic", "openai"],
        "budget": {"usd": 5},
        "plan": {"primary_metric": "judge_score", "min_sample": 50, "max_sample": 500},
        "scoring": {"judges": [{"name": "judge_score", "kind": "pointwise", "model": "claude-haiku-4-5"}]},
    }
    (tmp_path / "fresh.yaml").write_text(yaml.safe_dump(spec))
    lab = Fresh(url, tmp_path, cli)
    for args in (("experiment", "create", "fresh.yaml"), ("experiment", "start", "fresh")):
        done = lab.run(*args)
        assert done.returncode == 0, done.stderr
    return lab


def test_analyze_says_no_data_yet_and_exits_0(fresh: Fresh) -> None:
    done = fresh.run("analyze", "fresh")

    assert done.returncode == 0, done.stderr
    assert "experiment fresh: 0 requests, arms control, cand" in done.stdout
    assert "verdict: keep_running, ≈50 more prompts" in done.stdout
    assert NOTE.format("analyse") in done.stdout
    assert fresh.snapshots()[-1] == (0, "keep_running")  # what the dashboard reads: "keep running"

    document = json.loads(fresh.run("analyze", "fresh", "--json").stdout)
    assert (document["n_requests"], document["comparisons"]) == (0, [])
    assert document["note"] == NOTE.format("analyse")
    assert document["verdict"]["verdict"] == "keep_running"
    assert document["verdict"]["more_prompts"] == 50


def test_gate_is_keep_running_so_the_default_blocks(fresh: Fresh) -> None:
    blocked = fresh.run("gate", "fresh")
    assert blocked.returncode == 1, blocked.stderr
    assert "gate BLOCKED: experiment fresh verdict keep_running" in blocked.stdout
    assert NOTE.format("analyse") in blocked.stdout

    allowed = fresh.run("gate", "fresh", "--fail-on", "dont_ship", "--json")
    assert allowed.returncode == 0, allowed.stderr
    verdict = json.loads(allowed.stdout)
    assert (verdict["gate"], verdict["verdict"], verdict["n"]) == ("passed", "keep_running", 0)


@pytest.mark.parametrize("command", ["route", "report"])
def test_route_and_report_say_there_is_nothing_yet(command: str, fresh: Fresh, tmp_path: Path) -> None:
    what = "route" if command == "route" else "report"
    out = tmp_path / "out.file"
    extra = ("--export", str(out)) if command == "route" else ("--out", str(out))
    done = fresh.run(command, "fresh", *extra)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"experiment fresh: {NOTE.format(what)}"
    assert not out.exists()
    as_json = ("--json",) if command == "route" else ("--format", "json")
    assert json.loads(fresh.run(command, "fresh", *as_json).stdout) == {
        "experiment": "fresh", "n_requests": 0, "note": NOTE.format(what),
    }  # fmt: skip
