"""The real thing: `shadowlab dashboard` served, Debian's headless Chromium signs in, visits every page,
declares a winner; the decision row is then read back from Postgres. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from dashboard.auth import hash_password
from shadowlab.db import create_engine
from shadowlab.models import Decision
from tests.dashboard.conftest import PRICES

pytestmark = pytest.mark.postgres

PASSWORDS = {"erin": "decider pass 1", "pat": "viewer pass 2"}
PAGES = (
    "Experiments", "Overview", "Metrics", "Side by side", "Segments & routing", "Live", "Label", "Decide"
)  # fmt: skip
HEADERS = {"Experiments": "Experiments", "Label": "Blind labelling: checkout-assistant-v2"}
TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(seeded: Any, tmp_path: Path) -> Iterator[str]:
    """The dashboard on a free port, on the seeded database, with a decider and a viewer."""
    users = tmp_path / "users.yaml"
    roles = {"erin": "decider", "pat": "viewer"}
    entries = [{"name": n, "role": roles[n], "password_hash": hash_password(p)} for n, p in PASSWORDS.items()]
    users.write_text(yaml.safe_dump({"users": entries}))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    env |= {"SHADOWLAB_DATABASE_URL": seeded.url, "SHADOWLAB_DASHBOARD_USERS": str(users)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowlab.cli", "dashboard", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{url}/_stcore/health", timeout=2)
                if health.status_code == 200 and health.text == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling until the server listens, bounded by the deadline
        assert health is not None and health.text == "ok", proc.poll()
        yield url
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        for password in PASSWORDS.values():
            assert password not in output  # nothing logs a password


def _sign_in(browser: Any, url: str, name: str, artifacts: Path) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    expect(page.get_by_text("Sign in to shadowlab")).to_be_visible(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "dashboard-login.png"), full_page=True)
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible(timeout=TIMEOUT_MS)
    return page


def _open(page: Any, title: str, artifacts: Path, who: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name=title, exact=True).click()
    header = HEADERS.get(title, f"{title}: checkout-assistant-v2")
    expect(page.get_by_role("heading", name=header, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    slug = title.lower().replace(" & ", "-").replace(" ", "-")
    page.screenshot(path=str(artifacts / f"dashboard-{who}-{slug}.png"), full_page=True)


def test_a_decider_declares_a_winner_and_a_viewer_cannot_in_a_real_browser(
    server: str, seeded: Any, browser: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page = _sign_in(browser, server, "erin", artifacts_dir)
    try:
        for title in PAGES:
            _open(page, title, artifacts_dir, "decider")
        page.get_by_text("Ship", exact=True).click()
        page.get_by_label("Reason (required)").fill("Candidate is better on the primary metric.")
        page.get_by_label("Override reason (required when the decision differs from the analysis)").fill(
            "Browser test: ship the candidate whatever the analysis says."
        )
        page.get_by_role("button", name="Declare").click()
        expect(page.get_by_text("Decision #1 recorded: Ship")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_text("Current: #1 Ship by erin")).to_be_visible(timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts_dir / "dashboard-decider-declared.png"), full_page=True)
    finally:
        page.context.close()

    engine = create_engine(seeded.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Decision)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    row = rows[0]
    assert (row.verdict, row.winner_arm, row.decided_by) == ("ship", "cand", "erin")
    assert row.reason == "Candidate is better on the primary metric."
    assert row.computed_verdict == seeded.analysis["verdict"]["verdict"]
    assert row.is_override == (
        seeded.analysis["verdict"]["verdict"] != "ship" or seeded.analysis["verdict"]["recommended"] != "cand"
    )
    assert row.analysis_snapshot_id is not None
    assert row.evidence["analysis"] == seeded.analysis
    assert row.evidence["price_snapshot"] == PRICES
    assert row.evidence["scorer_versions"] == [{"name": "judge", "version": "1"}]

    # One server for both roles keeps the test short; the viewer gets its own browser context (session).
    page = _sign_in(browser, server, "pat", artifacts_dir)
    try:
        _open(page, "Label", artifacts_dir, "viewer")
        expect(page.get_by_role("link", name="Decide", exact=True)).to_have_count(0, timeout=TIMEOUT_MS)
    finally:
        page.context.close()
