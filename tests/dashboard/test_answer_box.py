"""An answer box longer than its 28rem says so on its bottom edge until its end is in view; a short one does
not (Debian's headless Chromium, 1280 px, the boxes as Side by side and Label draw them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashboard.answer_text import MORE_BELOW, markdown_html, word_diff_html
from tests.support.streamlit_browser import wait_next_frame

_CUE_JS = """id => {
  const box = document.querySelector(`#${id} .answer`), cue = box.querySelector('.more-below');
  const edge = box.getBoundingClientRect().bottom - cue.getBoundingClientRect().bottom;
  return {opacity: getComputedStyle(cue).opacity, edge: Math.round(edge), text: cue.innerText};
}"""


def test_a_long_answer_says_there_is_more_until_its_end_is_in_view(browser: Any, tmp_path: Path) -> None:
    long = "\n\n".join(f"Step {i}: check the deployment logs for the timeout and retry." for i in range(40))
    diff_long, diff_short = word_diff_html(long, "A short answer.")
    boxes = {"long": markdown_html(long), "short": markdown_html("A short answer."),
             "diff_long": diff_long, "diff_short": diff_short}  # fmt: skip
    page_file = tmp_path / "answers.html"
    body = "".join(f"<div id={name} style='width:560px'>{box}</div>" for name, box in boxes.items())
    page_file.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(page_file.as_uri())
        cues = {name: page.evaluate(_CUE_JS, name) for name in boxes}
        assert {name: cue["opacity"] for name, cue in cues.items()} == {
            "long": "1", "short": "0", "diff_long": "1", "diff_short": "0"
        }  # fmt: skip
        for name in ("long", "diff_long"):  # on the visible bottom edge (inside border and padding)
            assert 0 <= cues[name]["edge"] <= 6 and MORE_BELOW in cues[name]["text"], cues[name]
            page.evaluate(f"() => {{ const a = document.querySelector('#{name} .answer'); "
                          "a.scrollTop = a.scrollHeight; }")  # fmt: skip
            wait_next_frame(page)
            assert page.evaluate(_CUE_JS, name)["opacity"] == "0"  # the end is in view: nothing more
    finally:
        page.close()
