"""Postgres stops while ingest runs: it stays in its group, commits nothing, and stores everything once back.

A private throwaway Postgres cluster is started for this test (the shared one serves other tests).
"""

from __future__ import annotations

import glob
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab import migrate
from shadowlab.db import create_engine
from tests.support.ingest import (
    count_rows,
    describe_group,
    encode,
    end_offsets,
    group_offsets,
    make_capture,
    retries,
    scrape,
    unique,
    wait_for,
)
from tests.support.net import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.faults]


@dataclass
class PrivatePostgres:
    folder: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://shadowlab@127.0.0.1:{self.port}/ingest"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-l",
                str(self.folder / "log"),
                "-w",
                "-t",
                "60",
                *args,
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.ctl("-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.fail("no initdb under /usr/lib/postgresql/*/bin: install the postgresql package")
    folder = Path(tempfile.mkdtemp(prefix="shadowlab-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    pg = PrivatePostgres(folder, free_port(), Path(bins[-1]).parent)
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(pg.bin / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            "shadowlab",
            "--auth=trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    pg.start()
    try:
        admin = sa.create_engine(pg.url.replace("/ingest", "/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE ingest"))
        admin.dispose()
        engine = create_engine(pg.url)
        migrate.upgrade(engine)
        engine.dispose()
        yield pg
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(pg.bin / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_down_pauses_keeps_membership_and_stores_everything_once_back(
    private_postgres: PrivatePostgres,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    pg, n, port = private_postgres, 3000, free_port()
    topic, group, log = kafka_topic(partitions=2), unique("g"), tmp_path / "ingest.log"
    produce(topic, [encode(make_capture(i)) for i in range(n)])
    args = ("--topic", topic, "--group", group, "--batch-size", "100", "--metrics-port", str(port))
    proc = ingest_process(pg.url, *args, log=log)
    wait_for(lambda: count_rows(pg.url) >= 300, 60, "some captures stored")

    pg.stop()
    # Each retry of a batch the database refused is counted, with the partitions paused.
    wait_for(lambda: retries(scrape(port), "database") >= 1, 30, "ingest to notice and pause")
    committed = group_offsets(kafka_bootstrap, group)
    # Seven attempts with backoff 0.2, 0.4, ... s span > 12 s, longer than the 10 s session timeout:
    # a consumer that stopped polling meanwhile would have been evicted from its group.
    wait_for(lambda: retries(scrape(port), "database") >= 7, 60, "seven retries")
    assert proc.poll() is None
    state = describe_group(kafka_bootstrap, group)
    assert (state["group_state"], len(state["members"])) == ("Stable", 1)
    assert group_offsets(kafka_bootstrap, group) == committed  # no offset moved while down

    pg.start()
    wait_for(lambda: count_rows(pg.url) == n, 90, "every capture after Postgres came back")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-2000:]
    engine = sa.create_engine(pg.url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("select count(distinct request_id) from captured_requests")).scalar_one()
            == n
        )
    engine.dispose()
    assert group_offsets(kafka_bootstrap, group) == end_offsets(kafka_bootstrap, topic)  # resumed: all read
