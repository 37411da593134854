"""`shadowlab dashboard`: the command line it builds, and a real headless server answering health checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dashboard.command import APP_PATH, streamlit_command
from tests.support.net import free_port


def test_streamlit_command_runs_the_app_headless_on_the_given_address() -> None:
    cmd = streamlit_command("0.0.0.0", 9999)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]) == APP_PATH and APP_PATH.is_file()
    args = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert args["--server.address"] == "0.0.0.0"
    assert args["--server.port"] == "9999"
    assert args["--server.headless"] == "true"
    assert args["--client.toolbarMode"] == "viewer"
    assert args["--server.fileWatcherType"] == "none"  # editing a source does not sign everyone out


def test_dashboard_command_serves_the_app(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    env["SHADOWLAB_DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dashboard", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)  # polling the server until it listens, bounded by the deadline
        assert status == 200, proc.poll()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert f"dashboard on http://127.0.0.1:{port}" in output
