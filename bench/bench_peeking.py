"""Peeking: A/A experiments looked at every 100 prompts; how often does each rule declare a winner?

The simulation is `analysis.stats.peeking` (tests/analysis/test_sequential.py runs a 1,000-experiment
version); `make bench` runs this file. Usage: `.venv/bin/python bench/bench_peeking.py [SIMS]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.peeking import binary_aa, normal_aa, peeking, skewed_effect  # noqa: E402


def main() -> None:
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print("## Peeking: naive fixed-horizon rule vs always-valid sequences (`bench/bench_peeking.py`)")
    print()
    print(f"{sims:,} runs/row, a look every 100 prompts up to 5,000 (50 looks), α = 0.05, N* = 5,000.")
    print()
    print("| data | effect | naive rule declares a winner | sequential rule | simultaneous coverage | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, draw, effect in (
        ("A/A, normal scores", normal_aa, 0.0),
        ("A/A, paired binary (5 % errors)", binary_aa, 0.0),
        ("skewed differences, effect 0.1", skewed_effect, 0.1),
    ):
        started = time.perf_counter()
        result = peeking(draw, effect, sims=sims, every=100, max_n=5000, seed=7)
        seconds = time.perf_counter() - started
        naive = f"{result.naive_rate:.1%}" if effect == 0 else "—"
        seq = f"{result.sequential_rate:.2%}" if effect == 0 else "—"
        print(f"| {label} | {effect:g} | {naive} | {seq} | {result.coverage:.2%} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
