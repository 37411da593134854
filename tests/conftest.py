"""Shared fixtures: the real Postgres and Kafka started by `make services` (never mocks)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

import shadowlab  # noqa: F401  (before numpy: one BLAS thread, as every other process of the suite has)
from tests.support.postgres import fresh_database, migrated_template

# Property tests draw the same cases on every run (`make test` must pass every time, not most times);
# `make fuzz` explores fresh random cases, and each thing it finds becomes an @example and a fix.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000, database=None)
settings.load_profile(os.environ.get("SHADOWLAB_HYPOTHESIS_PROFILE", "ci"))

PG_URL = os.environ.get(
    "SHADOWLAB_TEST_DATABASE_URL", "postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:54329/shadowlab"
)
KAFKA_BOOTSTRAP = os.environ.get("SHADOWLAB_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the project's Postgres; fails (not skips) when it is down, since `make test` starts it."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"Postgres is not reachable at {PG_URL}: run `make services` first ({exc.orig})")
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(postgres_url: str) -> Iterator[str]:
    """One database migrated to head per test session, copied by `pg_migrated`."""
    with migrated_template(postgres_url) as name:
        yield name


@pytest.fixture
def pg_migrated(postgres_url: str, pg_template: str) -> Iterator[str]:
    """A fresh database already at the migrations' head (a copy of `pg_template`), dropped afterwards."""
    with fresh_database(postgres_url, template=pg_template) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the project's Kafka broker; fails (not skips) when it is down."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=10_000)
        admin.list_topics()
        admin.close()
    except KafkaError as exc:
        pytest.fail(f"Kafka is not reachable at {KAFKA_BOOTSTRAP}: run `make services` first ({exc!r})")
    return KAFKA_BOOTSTRAP


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory creating uniquely named topics (deleted afterwards): `kafka_topic(partitions=4)`."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    created: list[str] = []

    def make(partitions: int = 1, prefix: str = "test", config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config or {})]
        )
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            admin.delete_topics(created)
        admin.close()


CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m shadowlab ARGS` (the console entry point, `cli.entry`, as users run it) with a clean
    SHADOWLAB_* environment plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | env
    return subprocess.run(
        [sys.executable, "-m", "shadowlab", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def cli() -> CliRunner:
    """The `shadowlab` command as a subprocess: `cli("db", "upgrade", env={...}, cwd=tmp_path)`."""
    return run_cli


CHROMIUM = os.environ.get("SHADOWLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright (`make browser` installs it); fails when missing.

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open,
    and later tests call `asyncio.run()`, which refuses to start inside a running loop.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save screenshots (git-ignored `test-artifacts/`)."""
    folder = Path(__file__).resolve().parents[1] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


@dataclass(frozen=True)
class SmallDemo:
    """`shadowlab demo --seed 1 --small`, interrupted with Ctrl-C during the replay, then run again."""

    folder: Path
    interrupted_returncode: int
    output: str
    returncode: int


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> SmallDemo:
    """One demo run shared by the tests that need a seeded experiment (it takes about a minute)."""
    import signal

    folder = tmp_path_factory.mktemp("small-demo") / "demo-output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    # A relative --out, as `make demo` uses, run from the folder's parent. Through a Python that gives SIGINT
    # its default action first: a runner that starts the tests in the background without job control (as
    # `cmd &` in a script does) has SIGINT ignored, which every child inherits, and the Ctrl-C below would
    # then not reach the demo at all (it ran to its end, past the timeout).
    default_sigint = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    command = [sys.executable, "-c", default_sigint,
               "-m", "cli.main", "demo", "--seed", "1", "--small", "--out", folder.name]  # fmt: skip

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(command, env=env, cwd=folder.parent, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    first = start()
    assert first.stdout is not None
    seen = []
    for line in first.stdout:  # Ctrl-C once the replay stage has begun
        seen.append(line)
        if line.startswith("4. shadow replay"):
            os.killpg(first.pid, signal.SIGINT)
            break
    first.communicate(timeout=120)
    second = start()
    output, _ = second.communicate(timeout=900)
    return SmallDemo(
        folder, first.returncode, "".join(seen) + "\n--- rerun ---\n" + output, second.returncode
    )
