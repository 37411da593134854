"""Repeated prompts as the unit of analysis: A/A false positives and CI coverage by clustering choice.

The simulation is `demo.repeated_prompts` (its docstring says what is drawn; tests/analysis/test_clustering.py
runs a 400-run version); this prints the table for BENCHMARKS.md.
Usage: `.venv/bin/python bench/bench_clustering.py [RUNS]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.repeated_prompts import (  # noqa: E402
    CAPTURES,
    CLUSTERINGS,
    SCENARIOS,
    SHIFT,
    TRAFFIC_SEEDS,
    demo_traffic,
    rates,
)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    started = time.perf_counter()
    rows = [rates(clusters, runs, scenario=scenario) for scenario in SCENARIOS for clusters in CLUSTERINGS]
    shapes = [demo_traffic(seed) for seed in TRAFFIC_SEEDS]
    prompts = np.mean([t.fingerprint.max() + 1 for t in shapes])
    conversations = np.mean([t.conversation.max() + 1 for t in shapes])
    print(
        f"## Repeated prompts: A/A false positives by clustering (`bench/bench_clustering.py {runs}`)\n\n"
        f"{runs} A/A and {runs} shifted runs per row ({time.perf_counter() - started:.0f} s); demo traffic "
        f"of {CAPTURES} captures, seeds {TRAFFIC_SEEDS[0]}–{TRAFFIC_SEEDS[-1]} (≈ {prompts:.0f} distinct "
        f"prompts, ≈ {conversations:.0f} conversations); both arms `repeat_identical`; "
        f"shift {SHIFT} points.\n"
    )
    print("| scenario | SEs clustered by | A/A rate p < 0.05 | A/A rate p < 0.001 | 95 % CI coverage |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        coverage = "—" if row.coverage is None else f"{row.coverage:.4f}"
        rejected = f"{row.rejected_05:.4f} | {row.rejected_001:.4f}"
        print(f"| {row.scenario} | {row.clusters} | {rejected} | {coverage} |")


if __name__ == "__main__":
    main()
