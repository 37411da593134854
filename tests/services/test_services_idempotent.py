"""scripts/services.sh: `start` on running services starts nothing; `stop` then `start` brings them back.

tests/services/conftest.py moves this module to the end of the session: the restart would otherwise
cut off tests running after it. Every test here leaves both services up, even when it fails.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"
KAFKA_PIDFILE = ROOT / ".services" / "kafka" / "kafka.pid"
KAFKA_CONF = ROOT / ".services" / "kafka" / "server.properties"
STATUS_LINE = re.compile(r"^services: (postgres|kafka) (up|down) on (\S+)(?: \(pid (\d+)\))?", re.MULTILINE)


@dataclass(frozen=True)
class Status:
    """What `services.sh status` reported."""

    returncode: int
    up: dict[str, bool]
    pids: dict[str, int]


def run_script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=240, check=False
    )


def status() -> Status:
    result = run_script("status")
    lines = STATUS_LINE.findall(result.stdout)
    names = {name for name, *_ in lines}
    assert names == {"postgres", "kafka"}, f"unexpected status output:\n{result.stdout}"
    return Status(
        returncode=result.returncode,
        up={name: state == "up" for name, state, _, _ in lines},
        pids={name: int(pid) for name, _, _, pid in lines if pid},
    )


def argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def kafka_processes() -> set[int]:
    """Brokers running on this checkout's server.properties."""
    return {pid for pid in all_pids() if "kafka.Kafka" in (args := argv(pid)) and str(KAFKA_CONF) in args}


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def postmasters(data_dir: str) -> set[int]:
    """Postmasters serving `data_dir`: processes with its argv whose parent has not. A child keeps the
    postmaster's argv from its fork until it rewrites it (a backend or worker starting at that moment)."""
    serving = {pid for pid in all_pids() if argv(pid)[-2:] == ["-D", data_dir]}
    return {pid for pid in serving if parent(pid) not in serving}


def postmaster_data_dir(pid: int) -> str:
    args = argv(pid)
    assert "-D" in args, f"pid {pid} is not a postmaster: {args}"
    return args[args.index("-D") + 1]


def assert_services_answer(postgres_url: str, kafka_bootstrap: str) -> None:
    """Real calls, not only open ports: a query on Postgres, a metadata request on Kafka."""
    engine = sa.create_engine(postgres_url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "shadowlab"
    finally:
        engine.dispose()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10_000)
    try:
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()


@pytest.fixture
def services_left_up() -> Iterator[None]:
    """Whatever the test did, end with both services running for the rest of the suite."""
    yield
    result = run_script("start")
    assert result.returncode == 0, f"services.sh start failed after the test:\n{result.stdout}{result.stderr}"


@pytest.mark.usefixtures("services_left_up")
def test_start_on_running_services_starts_nothing() -> None:
    before = status()
    assert before.returncode == 0 and all(before.up.values()), "the suite expects services to be up"
    data_dir = postmaster_data_dir(before.pids["postgres"])
    assert int(KAFKA_PIDFILE.read_text()) == before.pids["kafka"]

    result = run_script("start")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout
    after = status()
    assert after.pids == before.pids
    assert int(KAFKA_PIDFILE.read_text()) == before.pids["kafka"]
    assert kafka_processes() == {before.pids["kafka"]}
    assert postmasters(data_dir) == {before.pids["postgres"]}


@pytest.mark.usefixtures("services_left_up")
@pytest.mark.faults
def test_stop_then_start_brings_both_services_back(postgres_url: str, kafka_bootstrap: str) -> None:
    before = status()
    data_dir = postmaster_data_dir(before.pids["postgres"])

    stopped = run_script("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    down = status()
    assert down.returncode != 0 and down.up == {"postgres": False, "kafka": False}
    assert kafka_processes() == set() and postmasters(data_dir) == set()
    assert not KAFKA_PIDFILE.exists()
    again = run_script("stop")
    assert again.returncode == 0 and "already stopped" in again.stdout

    started = run_script("start")

    assert started.returncode == 0, started.stdout + started.stderr
    up = status()
    assert up.returncode == 0 and up.up == {"postgres": True, "kafka": True}
    assert kafka_processes() == {up.pids["kafka"]}
    assert postmasters(data_dir) == {up.pids["postgres"]}
    assert up.pids["kafka"] != before.pids["kafka"] and up.pids["postgres"] != before.pids["postgres"]
    assert_services_answer(postgres_url, kafka_bootstrap)
