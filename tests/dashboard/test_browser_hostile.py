"""Hostile names in a real browser: an experiment and arms named with Markdown, HTML, URLs, `javascript:`
links, `<script>`, bidirectional and zero-width characters, and a 200-character name, on every page of the
served dashboard and in report.html (Debian's headless Chromium through Playwright). Nothing becomes a link,
no script runs, and the names read exactly as typed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.report import report_document
from analysis.report_html import report_html
from shadowlab import store
from shadowlab.db import create_engine, session_factory, session_scope
from tests.support.dashboard_seed import PLAN, Seeded, seed
from tests.support.streamlit_browser import PAGE_TIMEOUT_MS, open_page, wait_drawn

pytestmark = pytest.mark.postgres

NAME = (
    "[open](javascript:alert('n')) https://evil.example/x a@evil.example **bold** "
    "<script>window.pwned='n'</script> <img src=x onerror=\"window.pwned='i'\"> :material/warning: $x$ "
    "\u202eevil\u200b "
)
NAME += "W" * (200 - len(NAME))  # and one long word: the header must wrap it
CONTROL = "ctrl https://evil.example/c <b>bold</b>"
CANDIDATE = "cand [x](javascript:alert(1)) <img src=y onerror=alert(2)> www.evil.example"
PAGES = ("Overview", "Metrics", "Side by side", "Segments & routing", "Live", "Label", "Decide")
# What md_escape may add that nobody sees: WORD JOINER (stops autolinks) and FSI/PDI (bidi isolation).
_INVISIBLE = "\u2060\u2068\u2069"
# Links on the page that are not the app's own navigation: anything pointing away, or at javascript:.
_FOREIGN_LINKS_JS = """() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
  .filter(h => /evil|javascript:|mailto:|^https?:\\/\\/(?!127\\.0\\.0\\.1)/i.test(h))"""


def visible(text: str) -> str:
    return text.translate({ord(ch): None for ch in _INVISIBLE})


@pytest.fixture
def hostile(migrated: str) -> Seeded:
    assert len(NAME) <= 200 and max(len(CONTROL), len(CANDIDATE)) <= 100
    return seed(migrated, name=NAME, arms=(CONTROL, CANDIDATE))


def _assert_inert(page: Any, where: str) -> None:
    assert page.evaluate(_FOREIGN_LINKS_JS) == [], where
    assert page.evaluate("() => window.pwned") is None, where
    # No element the names could have produced: an image, a script, HTML bold, Markdown emphasis of "bold".
    # An answer's own Markdown emphasis is formatting by design (its box, `.answer`, never holds a name).
    made = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=stMain] :is(img, script, b, strong, em)')]
          .filter(e => !['STRONG', 'EM'].includes(e.tagName)
            || e.innerText === 'bold' && !e.closest('.answer'))
          .map(e => e.outerHTML)"""
    )
    assert made == [], (where, made)


def _open(page: Any, title: str, heading: str) -> str:
    """Open the page by its navigation link; its header's text (the page's heading, then the name)."""
    header = page.locator("[data-testid=stMain] h2").filter(has_text=re.compile(f"^{re.escape(heading)}: "))
    open_page(page, title, header)
    return visible(header.inner_text())


def test_hostile_names_stay_text_on_every_page_and_in_the_report(
    hostile: Seeded, serve_dashboard: Callable[..., str], browser: Any, artifacts_dir: Path, tmp_path: Path
) -> None:
    url = serve_dashboard(hostile.url)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on("dialog", lambda dialog: pytest.fail(f"a name ran as script: {dialog.message}"))
    try:
        page.goto(url)
        page.get_by_role("heading", name="Experiments").wait_for()
        wait_drawn(page, PAGE_TIMEOUT_MS)  # the checks below read the whole page
        assert page.get_by_role("button", name="Deploy").count() == 0  # the readers' toolbar
        picker = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]")
        assert picker.get_by_role("combobox").input_value() == NAME
        _assert_inert(page, "Experiments")
        for title in PAGES:
            heading = "Blind labelling" if title == "Label" else title
            assert _open(page, title, heading) == f"{heading}: {NAME}", title
            _assert_inert(page, title)
            main = visible(page.locator("[data-testid=stMain]").inner_text())
            if title in ("Overview", "Side by side"):
                assert CANDIDATE in main, title
            if title == "Side by side":
                assert CONTROL in main
            if title == "Decide":  # the form's Ship option names the arm as typed
                assert f"Ship {CANDIDATE}" in main
            slug = title.lower().replace(" & ", "-").replace(" ", "-")
            page.screenshot(path=str(artifacts_dir / f"dashboard-hostile-{slug}.png"), full_page=True)
    finally:
        context.close()

    engine = create_engine(hostile.url)
    try:
        with session_scope(session_factory(engine)) as session:
            # The seed's plan names the metric of its in-memory analysis; the database loader calls the
            # judge's scores by the scorer's name.
            experiment = store.experiments.by_id(hostile.experiment_id, session=session)
            experiment.plan = {**PLAN, "primary_metric": "judge"}
        with session_scope(session_factory(engine)) as session:
            html = report_html(report_document(session, NAME))
    finally:
        engine.dispose()
    report_file = tmp_path / "report.html"
    report_file.write_text(html)
    page = browser.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a name ran as script in report.html: {dialog.message}"))
    try:
        page.goto(report_file.as_uri())
        assert page.locator("h1").inner_text() == f"Experiment {NAME}"
        assert page.evaluate(_FOREIGN_LINKS_JS) == []
        assert page.evaluate("() => window.pwned") is None
        assert page.locator("script, img").count() == 0
        assert re.search(re.escape(CANDIDATE), page.locator("body").inner_text())
        page.screenshot(path=str(artifacts_dir / "report-hostile.png"), full_page=True)
    finally:
        page.close()
