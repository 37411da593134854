"""Does "keep running, ≈N more prompts" keep its word? Simulated sequential experiments, looked at early.

Each run draws a paired experiment with a known effect on the primary metric (a 1-10 judge score, cost as
a guardrail), looks once at n₀ prompts; when the verdict is keep_running it draws the N more prompts the
verdict asked for (the same stream continued) and looks again. "Settled" = the second look is no longer
keep_running. The projection promises an 80 % chance; the goal is ≥ 75 % of runs settled.

`.venv/bin/python bench/bench_projection.py [RUNS]` (default 300 per effect).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.projection import look, stream  # noqa: E402


def _verdict(data: dict[str, np.ndarray], n: int) -> tuple[str, int | None]:
    verdict = look(data, n)
    return verdict.verdict, verdict.more_prompts


def run(runs: int) -> list[str]:
    lines = [
        "## Keep running, ≈N more prompts: does it settle? (bench/bench_projection.py)",
        "",
        f"{runs} simulated sequential experiments per effect; first look at n₀ prompts; when the verdict is",
        "keep_running, the N more prompts it asked for are drawn and the experiment is looked at again.",
        "Goal: ≥ 75 % of those runs settled (the verdict promises about 80 %).",
        "",
        "| true effect (points) | n₀ | keep_running at n₀ | N asked (median, 10–90 %) | settled after N |",
        "|---|---|---|---|---|",
    ]
    for effect, n0 in ((0.10, 400), (0.15, 300), (0.25, 150)):
        rng = np.random.default_rng(int(effect * 1000))
        asked: list[int] = []
        settled = 0
        for _ in range(runs):
            verdict, more = _verdict(data := stream(rng, 60_000, effect), n0)
            if verdict != "keep_running" or more is None:
                continue
            asked.append(more)
            second, _ = _verdict(data, min(n0 + more, 60_000))
            settled += second != "keep_running"
        share = settled / len(asked) if asked else float("nan")
        q10, q50, q90 = np.percentile(asked, [10, 50, 90]) if asked else (0, 0, 0)
        lines.append(
            f"| {effect:+.2f} | {n0} | {len(asked)}/{runs} | {q50:.0f} ({q10:.0f}–{q90:.0f}) | "
            f"**{share:.1%}** {'ok' if share >= 0.75 else 'BELOW GOAL'} |"
        )
    return lines


if __name__ == "__main__":
    started = time.perf_counter()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for line in run(runs):
        print(line)
    print(f"\n({time.perf_counter() - started:.0f} s)")
