"""The real thing: `shadowlab dashboard` served, Debian's headless Chromium signs in at 1920 × 1080 and
1280 × 800, visits every page, checks what a product manager sees first (the verdict above the fold, units,
short p-values, forest plots a row per candidate, the decide form preset to the analysis), opens an
experiment from the list and declares a winner; the decision row is then read back from Postgres.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from dashboard.auth import hash_password
from dashboard.charts import ROW_HEIGHT
from dashboard.decisions import AGREEING
from dashboard.snapshot import VERDICT_LABELS
from shadowlab.db import create_engine
from shadowlab.models import Decision, Experiment
from tests.support.dashboard_seed import PRICES
from tests.support.streamlit_browser import PAGE_TIMEOUT_MS, full_page_screenshot, open_page

pytestmark = pytest.mark.postgres

PASSWORDS = {"erin": "decider pass 1", "pat": "viewer pass 2"}
PAGES = (
    "Experiments", "Overview", "Metrics", "Side by side", "Segments & routing", "Live", "Label", "Decide"
)  # fmt: skip
HEADERS = {"Experiments": "Experiments", "Label": "Blind labelling: checkout-assistant-v2"}
# A bound on waiting for a condition, never a wait. A page's first visit fetches the components it is the
# first to use (Streamlit loads them lazily): at load 37 on 2 cores, Side by side still showed its 18 st.html
# answers as loading placeholders 30 s after its run had ended, and the test failed there.
TIMEOUT_MS = PAGE_TIMEOUT_MS


@pytest.fixture
def server(seeded: Any, tmp_path: Path, serve_dashboard: Callable[..., str]) -> str:
    """The dashboard on a free port, on the seeded database, with a decider and a viewer."""
    users = tmp_path / "users.yaml"
    roles = {"erin": "decider", "pat": "viewer"}
    entries = [{"name": n, "role": roles[n], "password_hash": hash_password(p)} for n, p in PASSWORDS.items()]
    users.write_text(yaml.safe_dump({"users": entries}))

    def no_password(output: str) -> None:
        for password in PASSWORDS.values():
            assert password not in output  # nothing logs a password

    return serve_dashboard(seeded.url, users, no_password)


# Every grid shown on the page (not in a closed expander) as {headers, rows}, from the data grid's
# accessible table: the cells are drawn on a canvas, so their text is only in this hidden table.
_GRIDS_JS = """() => [...document.querySelectorAll('[data-testid=stDataFrame]')]
  .filter(g => g.checkVisibility()).map(g => ({
  headers: [...g.querySelectorAll('[role=columnheader]')].map(h => h.innerText.trim()),
  rows: [...g.querySelectorAll('[role=row]')].map(r => [...r.querySelectorAll('[role=gridcell]')]
    .map(c => c.innerText.trim())).filter(r => r.length)
}))"""
# Per static table shown, how many px its content overflows the box that scrolls it sideways (an inner div
# of the table, not the table's own element): long cells must wrap instead.
_TABLE_OVERFLOW_JS = """() => [...document.querySelectorAll('[data-testid=stTable]')]
  .filter(t => t.checkVisibility())
  .map(t => Math.max(...[t, ...t.querySelectorAll('div')].map(e => e.scrollWidth - e.clientWidth)))"""
VIEWPORTS = ((1280, 800), (1920, 1080))
P_VALUE = re.compile(r"^p( |$)")
UNIT = re.compile(r"\$|%|ms|points|pp|prompts")


def _grids(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(_GRIDS_JS))


def _sign_in(browser: Any, url: str, name: str, artifacts: Path, size: tuple[int, int] = VIEWPORTS[0]) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("dialog", lambda dialog: pytest.fail(f"captured text ran as script: {dialog.message}"))
    page.goto(url)
    expect(page.get_by_text("Sign in to shadowlab")).to_be_visible(timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "dashboard-login.png"), full_page=True)
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Experiments", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    return page


def _open(page: Any, title: str, artifacts: Path, who: str) -> None:
    header = HEADERS.get(title, f"{title}: checkout-assistant-v2")
    open_page(page, title, page.get_by_role("heading", name=header, exact=True), TIMEOUT_MS)
    slug = title.lower().replace(" & ", "-").replace(" ", "-")
    full_page_screenshot(
        page, artifacts / f"dashboard-{who}-{page.viewport_size['width']}-{slug}.png", TIMEOUT_MS
    )
    for grid in _grids(page):  # no p-value is a 60-character string
        for column, header in enumerate(grid["headers"]):
            if P_VALUE.match(header):
                assert all(len(row[column]) <= 10 for row in grid["rows"] if column < len(row)), (title, grid)
    overflows = page.evaluate(_TABLE_OVERFLOW_JS)
    assert all(px <= 1 for px in overflows), (title, overflows)  # no sideways scroll


def _in_view(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["y"] + box["height"] <= size["height"]
        and box["x"] + box["width"] <= size["width"]
    )


def _check_results_page(page: Any, seeded: Any) -> None:
    """Overview: the verdict and the recommendation above the fold; every number in the table has a unit."""
    verdict = seeded.analysis["verdict"]
    banner = page.get_by_text(f"Verdict: {VERDICT_LABELS[verdict['verdict']]}", exact=True)
    assert _in_view(page, banner)
    recommended = page.locator("[data-testid=stMetric]").filter(has_text="Recommended")
    assert _in_view(page, recommended)
    assert (verdict["recommended"] or "none") in recommended.inner_text()
    table = page.locator("[data-testid=stTable] table").first
    assert table.locator("thead th").all_inner_texts()[:2] == ["Metric", "Status"]
    for row in table.locator("tbody tr").all():
        for cell in row.locator("td").all_inner_texts()[2:]:
            assert not re.search(r"\d", cell) or UNIT.search(cell), cell


def _check_forest_plots(page: Any, seeded: Any) -> None:
    """Metrics: one panel per metric, each tall enough for a row per candidate plus its axis."""
    metrics = {c["metric"] for c in seeded.analysis["comparisons"]}
    candidates = {c["candidate"] for c in seeded.analysis["comparisons"]}
    charts = page.locator("[data-testid=stVegaLiteChart]")
    for i in range(len(metrics)):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["height"] >= len(candidates) * ROW_HEIGHT + 40, box


# The tops of the score lines ('quality 7 · latency 412 ms · cost $0.0011'), control then candidate per pair.
_SCORE_LINES_JS = """() => [...document.querySelectorAll('[data-testid=stText]')]
  .filter(t => t.checkVisibility() && t.innerText.includes(' · latency '))
  .map(t => t.getBoundingClientRect().top)"""


def _check_pairs_align(page: Any) -> None:
    """Side by side: each pair's two score lines on one line, whatever the heights of the answers."""
    tops = page.evaluate(_SCORE_LINES_JS)
    assert tops and len(tops) % 2 == 0, tops
    assert all(abs(c - t) < 1 for c, t in zip(tops[::2], tops[1::2], strict=True)), tops


def test_a_decider_declares_a_winner_and_a_viewer_cannot_in_a_real_browser(
    server: str, seeded: Any, browser: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    computed = seeded.analysis["verdict"]
    preset = AGREEING[computed["verdict"]]
    preset_label = VERDICT_LABELS[preset] + (f" {computed['recommended']}" if preset == "ship" else "")
    # One signed-in session at both sizes; the large screen first: the declaration below ends the experiment.
    page = _sign_in(browser, server, "erin", artifacts_dir, VIEWPORTS[-1])
    try:
        for width, height in VIEWPORTS[::-1]:
            page.set_viewport_size({"width": width, "height": height})
            for title in PAGES:
                _open(page, title, artifacts_dir, "decider")
                if title == "Experiments":
                    grid = _grids(page)[0]
                    # the verdict first (Ship names its arm), the spend against the budget, candidates last
                    assert grid["headers"][:2] == ["experiment", "verdict"]
                    assert grid["headers"][-1] == "candidates"
                    assert grid["rows"][0][1] == VERDICT_LABELS[computed["verdict"]] + (
                        f" {computed['recommended']}" if computed["verdict"] == "ship" else ""
                    )
                if title == "Overview":
                    _check_results_page(page, seeded)
                if title == "Metrics":
                    _check_forest_plots(page, seeded)
                if title == "Side by side":
                    _check_pairs_align(page)
            # the form's default is the analysis' recommendation (Ship names its arm), the reasons beside it
            recommended = page.get_by_role("radio", name=f"{preset_label} (the analysis' recommendation)")
            expect(recommended).to_be_checked()
            expect(page.get_by_role("radio", checked=True)).to_have_count(1)
            expect(page.get_by_text("What the analysis says")).to_be_visible()

        # a row of the experiments list opens its overview
        _open(page, "Experiments", artifacts_dir, "decider")
        grid = page.locator("[data-testid=stDataFrame]").first
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 16, box["y"] + 52)  # the row's selection box
        expect(page.get_by_role("heading", name="Overview: checkout-assistant-v2")).to_be_visible(
            timeout=TIMEOUT_MS
        )
        _open(page, "Decide", artifacts_dir, "decider")
        page.get_by_text(re.compile(r"^Ship cand")).click()
        page.get_by_label("Reason (required)").fill("Candidate is better on the primary metric.")
        page.get_by_label("Override reason (required when the decision differs from the analysis)").fill(
            "Browser test: ship the candidate whatever the analysis says."
        )
        page.get_by_role("button", name="Declare").click()
        expect(
            page.get_by_text(
                re.compile(r"^Decision #1 recorded: Ship cand \(override.*the experiment is concluded\.$")
            )
        ).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_text("Current: #1 Ship cand by erin")).to_be_visible(timeout=TIMEOUT_MS)
        page.screenshot(path=str(artifacts_dir / "dashboard-decider-declared.png"), full_page=True)
    finally:
        page.context.close()

    engine = create_engine(seeded.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Decision)).all()
            status = conn.execute(sa.select(Experiment.status)).scalar_one()
    finally:
        engine.dispose()
    assert status == "concluded"
    assert len(rows) == 1
    row = rows[0]
    assert (row.verdict, row.winner_arm, row.decided_by) == ("ship", "cand", "erin")
    assert row.reason == "Candidate is better on the primary metric."
    assert row.computed_verdict == computed["verdict"]
    assert row.is_override == (computed["verdict"] != "ship" or computed["recommended"] != "cand")
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
