"""Regenerate docs/screenshots/dashboard-*.png: the dashboard served on a database, each page at 1280 × 800 in
headless Chromium (`make browser`), full page, as a product manager sees it (authentication off).

The docs show the small demo, seed 3:

    .venv/bin/shadowlab demo --small --seed 3 --out /tmp/demo
    .venv/bin/python scripts/dashboard_screenshots.py sqlite:////tmp/demo/shadowlab.db [Metrics Decide ...]

Without page titles, every page is taken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

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


def serve(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    env["SHADOWLAB_DATABASE_URL"] = database_url
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dashboard", "--port", str(port)], env=env,
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


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    titles = sys.argv[2:] or list(PAGES)
    unknown = sorted(set(titles) - set(PAGES))
    if unknown:
        raise SystemExit(f"error: unknown page titles {unknown}; expected some of {list(PAGES)}")
    from playwright.sync_api import sync_playwright

    server, address = serve(sys.argv[1])
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(address)
            for title in titles:
                heading = re.compile(rf"^{re.escape(HEADINGS.get(title, title))}(: .+)?$")
                open_page(page, title, page.get_by_role("heading", name=heading))  # once drawn
                path = OUT / f"dashboard-{PAGES[title]}.png"
                full_page_screenshot(page, path, PAGE_TIMEOUT_MS)
                print(f"wrote {path.relative_to(REPO)}")
            browser.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
