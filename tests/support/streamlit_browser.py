"""Waiting for a served Streamlit page in Playwright: on conditions the page shows, never for a fixed time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Streamlit marks its root with the script's state. The run has ended, no element is still a loading
# placeholder, every grid shown has its column headers and every chart shown has drawn its marks (Vega draws
# after the run).
_DRAWN_JS = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  if (app?.dataset.testScriptState !== 'notRunning') return false;
  const shown = selector => [...document.querySelectorAll(selector)].filter(e => e.checkVisibility());
  return !shown('[data-testid=stSkeleton]').length
    && shown('[data-testid=stDataFrame]').every(g => g.querySelector('[role=columnheader]')?.textContent)
    && shown('[data-testid=stVegaLiteChart]').every(c => {
      const marks = c.querySelector('.marks');
      return marks && marks.getBoundingClientRect().height > 0;
    });
}"""
# What `_DRAWN_JS` found missing, for the message when it never came true.
_STATE_JS = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  const shown = selector => [...document.querySelectorAll(selector)].filter(e => e.checkVisibility());
  return {script: app?.dataset.testScriptState,
    loading_elements: shown('[data-testid=stSkeleton]').length,
    grids_without_headers: shown('[data-testid=stDataFrame]')
      .filter(g => !g.querySelector('[role=columnheader]')?.textContent).length,
    charts_without_marks: shown('[data-testid=stVegaLiteChart]').filter(c => {
      const marks = c.querySelector('.marks');
      return !(marks && marks.getBoundingClientRect().height > 0);
    }).length,
    headings: [...document.querySelectorAll('[data-testid=stMain] :is(h1, h2)')].map(h => h.innerText)};
}"""
_NEXT_FRAME_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
# A bound on waiting for a page, never a wait. A page's first visit fetches the components it is the first to
# use (Streamlit loads them lazily): at load 37 on 2 cores, Side by side still showed its 18 st.html answers
# as loading placeholders 30 s after its run had ended.
PAGE_TIMEOUT_MS = 120_000


def open_page(page: Any, title: str, heading: Any, timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
    """Open the page `title` by its navigation link; return once its own `heading` (a locator) shows, its run
    has ended and everything is drawn. Only that page's run draws its heading, so 'not running' once it shows
    is that run's end: no need to catch the run's start as it goes by (a watcher that missed it waited
    forever)."""
    from playwright.sync_api import expect

    wait_drawn(page, timeout_ms)  # a run in progress (e.g. one a click started) ends first
    if heading.is_visible():  # the page shown already: its link would not run the script again
        return
    page.get_by_role("link", name=title, exact=True).click()
    expect(heading).to_be_visible(timeout=timeout_ms)
    wait_drawn(page, timeout_ms)


def wait_drawn(page: Any, timeout_ms: float) -> None:
    """Return once the script's run has ended and the page's grids and charts are drawn (after a click, wait
    first for something only the new run draws, as `open_page` does). `loading_elements` in the failure are
    elements whose component is still being fetched (Streamlit loads most of them, st.html's among them, on
    first use)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(_DRAWN_JS, timeout=timeout_ms)
    except PlaywrightTimeout:
        state = page.evaluate(_STATE_JS)
        raise AssertionError(f"the page was not drawn within {timeout_ms / 1000:g} s: {state}") from None


def wait_next_frame(page: Any) -> None:
    """Return after the browser has laid out and painted once more (e.g. after a viewport change)."""
    page.evaluate(_NEXT_FRAME_JS)


def full_page_screenshot(page: Any, path: Path, timeout_ms: float) -> None:
    """Streamlit scrolls inside its main container, so a full-page shot needs a viewport as tall as it; the
    viewport is then put back and the page drawn again at that size."""
    size = dict(page.viewport_size)
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(height))})
    wait_next_frame(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    wait_next_frame(page)
    wait_drawn(page, timeout_ms)
