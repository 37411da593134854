"""Every page on the small demo's database (SQLite, four arms, segments and routing in the snapshot): no
traceback, no error box but the verdict's, short p-values, and the verdict in plain words."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import data

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = (
    "views/experiments.py", "views/overview.py", "views/metrics.py", "views/side_by_side.py",
    "views/segments.py", "views/live.py", "views/label.py", "views/decide.py",
)  # fmt: skip
LONG_NUMBER = re.compile(r"\d\.\d{7,}")


@pytest.fixture(scope="module")
def demo_url(small_demo: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert small_demo.returncode == 0, small_demo.output[-2000:]
    folder = tmp_path_factory.mktemp("demo-dashboard")
    shutil.copy(small_demo.folder / "shadowlab.db", folder / "shadowlab.db")
    url = f"sqlite:///{folder / 'shadowlab.db'}"
    yield url
    data.engine(url).dispose()
    st.cache_resource.clear()


def _texts(at: AppTest) -> list[str]:
    elements = [*at.markdown, *at.text, *at.caption, *at.success, *at.info, *at.warning, *at.error]
    # text cells only: numbers behind a column format (progress bars, $%.4f) are shown formatted
    cells = [
        v
        for frame in [*at.dataframe, *at.table]
        for v in frame.value.to_numpy().ravel()
        if isinstance(v, str)
    ]
    return [e.value for e in elements] + cells


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_reads_on_the_demo(page: str, demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", demo_url)
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if not e.value.startswith("**")]
    texts = _texts(at)
    assert not [t for t in texts if LONG_NUMBER.search(t)], "a raw float is shown"
    for word in ("aa_noise_floor", "pref_preference", "dont_ship"):
        assert not any(word in t for t in texts if not t.startswith("•")), (
            word
        )  # the rule's words only folded
    if page == "views/overview.py":
        banner = [e.value for e in at.error if e.value.startswith("**Verdict: ")]
        assert banner and "Don't switch" in banner[0]  # the demo's candidates lose quality
