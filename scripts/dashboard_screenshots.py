"""Regenerate docs/screenshots/dashboard-*.png: the dashboard served on a database, each page at 1280 × 800 in
headless Chromium (`make browser`), full page, as a product manager sees it (authentication off); and
report-html.png: the top (1280 × 1100) of `shadowlab report --format html` of the newest experiment (the one
the dashboard opens first).

The docs show the small demo, seed 3:

    .venv/bin/shadowlab demo --small --seed 3 --out /tmp/demo
    .venv/bin/python scripts/dashboard_screenshots.py sqlite:////tmp/demo/shadowlab.db [Metrics Report ...]

Without titles, every page and the report are taken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.net import free_port  # noqa: E402
from tests.support.streamlit_browser import PAGE_TIMEOUT_MS, full_page_screenshot, open_page  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
OUT = REPO / "docs" / "screenshots"
PAGES = {
    "Experiments": "experiments", "Overview": "overview", "Metrics": "metrics",
    "Side by side": "side-by-side", "Segments & routing": "segments-routing", "Live": "live",
    "Label": "label", "Glossary": "glossary", "Decide": "decide",
}  # fmt: skip
HEADINGS = {"Label": "Blind labelling"}  # a page's own heading, where it is not its title (+ ": experiment")
REPORT = "Report"  # the title that takes report-html.png


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    return {**env, "SHADOWLAB_DATABASE_URL": database_url}


def serve(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dashboard", "--port", str(port)], env=_env(database_url),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{address}/_stcore/health", timeout=2).text == "ok":
                return server, address
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"error: the dashboard did not start on {database_url}")


def _cli(database_url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=_env(database_url), text=True,
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip() or f"error: shadowlab {' '.join(args)} failed")
    return done.stdout


def report_screenshot(browser: Any, database_url: str) -> Path:
    """The top of the newest experiment's HTML report (`experiment list` ends with the one the dashboard opens
    first), at 1280 px."""
    listed = _cli(database_url, "experiment", "list").splitlines()
    if not listed:
        raise SystemExit(f"error: no experiment in {database_url}: nothing to report")
    path = OUT / "report-html.png"
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.html"
        _cli(database_url, "report", listed[-1].split("\t")[0], "--format", "html", "--out", str(report))
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(report.as_uri())
        page.screenshot(path=str(path))
        page.close()
    return path


def dashboard_screenshots(browser: Any, database_url: str, titles: list[str]) -> list[Path]:
    """Each page of `titles`, full page, on the dashboard served on `database_url`."""
    server, address = serve(database_url)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(address)
        paths = []
        for title in titles:
            heading = re.compile(rf"^{re.escape(HEADINGS.get(title, title))}(: .+)?$")
            open_page(page, title, page.get_by_role("heading", name=heading))  # once drawn
            paths.append(OUT / f"dashboard-{PAGES[title]}.png")
            full_page_screenshot(page, paths[-1], PAGE_TIMEOUT_MS)
        page.close()
        return paths
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    database_url, titles = sys.argv[1], sys.argv[2:] or [*PAGES, REPORT]
    unknown = sorted(set(titles) - {*PAGES, REPORT})
    if unknown:
        raise SystemExit(f"error: unknown page titles {unknown}; expected some of {[*PAGES, REPORT]}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = [title for title in titles if title != REPORT]
        paths = dashboard_screenshots(browser, database_url, pages) if pages else []
        if REPORT in titles:
            paths.append(report_screenshot(browser, database_url))
        browser.close()
    for path in paths:
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
