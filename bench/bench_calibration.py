"""Calibration of every test by simulation: A/A false-positive rates and CI coverage under a known effect.

The scenarios and the simulation are `analysis.stats.calibration` (tests/analysis/test_calibration.py runs a
small version); this prints the table for BENCHMARKS.md. Usage: `.venv/bin/python bench/bench_calibration.py
[SIMS]` (10,000 by default).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.calibration import calibrate  # noqa: E402


def main() -> None:
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    started = time.perf_counter()
    rows = calibrate(sims)
    print(f"Calibration, {sims} simulated experiments per scenario ({time.perf_counter() - started:.0f} s)\n")
    print("| test | A/A rate of p < 0.05 | 95 % CI coverage (true effect) |")
    print("|---|---|---|")
    for row in rows:
        coverage = "—" if row.coverage is None else f"{row.coverage:.4f}"
        print(f"| {row.test} | {row.aa_rejection_rate:.4f} | {coverage} |")


if __name__ == "__main__":
    main()
