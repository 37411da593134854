"""The one progress display: plain lines at most once per interval off a terminal, a bar on one, and the
final state as a plain line in both cases."""

from __future__ import annotations

import io

from shadowlab.progress import ProgressLine, progress_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_text_has_counts_rate_eta_and_note() -> None:
    assert (
        progress_text("score judge", 30, 120, 10.0, "spend $0.01")
        == "score judge: 30/120 (3.0/s, ETA 30s) spend $0.01"
    )
    assert progress_text("replay x", 5, None, 0.0) == "replay x: 5/? (0.0/s, ETA -)"


def test_off_a_terminal_lines_are_throttled_and_the_last_is_always_printed() -> None:
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine("replay exp", stream=stream, interval_s=1.0, clock=clock)
    for done in range(10):  # ten updates within the same second: one line
        clock.now += 0.05
        line.update(done, 40)
    clock.now += 1.0
    line.update(20, 40)  # a second later: another line
    clock.now += 0.1
    line.update(40, 40, "done")  # too soon to print, but close() prints the final state
    line.close()
    lines = stream.getvalue().splitlines()
    assert [text.split(" (")[0] for text in lines] == [
        "replay exp: 0/40",
        "replay exp: 20/40",
        "replay exp: 40/40",
    ]
    assert lines[-1].endswith(" done")


def test_on_a_terminal_a_bar_is_drawn_and_the_final_line_stays_plain() -> None:
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine("score judge", stream=stream, clock=clock, live=True)
    clock.now += 2.0
    line.update(10, 10)
    line.close()
    assert stream.getvalue().splitlines()[-1] == "score judge: 10/10 (5.0/s, ETA 0s)"
