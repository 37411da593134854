"""The browser the UI tests use: Debian's Chromium under Playwright renders a page, and text stays text."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def test_chromium_renders_a_local_page_and_escaped_markup_stays_text(
    browser: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    hostile = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    page_file = tmp_path / "page.html"
    body = f"<pre id=t>{html.escape(hostile)}</pre>"
    page_file.write_text(f"<html><head><title>ok</title></head><body>{body}</body></html>")
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        assert page.title() == "ok"
        assert page.inner_text("#t") == hostile
        page.screenshot(path=str(artifacts_dir / "browser-smoke.png"))
    finally:
        page.close()
