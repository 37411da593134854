"""Benchmark `shadowlab analyze --from-csv` on 100,000 requests × 5 arms × 6 metrics.

Run: `.venv/bin/python bench/bench_analyze.py [N_REQUESTS]`; prints a markdown table for BENCHMARKS.md.
Also times a naive per-resample bootstrap of the same quantile intervals, for the ratio.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARMS = ("control", "cand_a", "cand_b", "cand_c", "cand_d")
RESAMPLES = 2000
NAIVE_TIMED_RESAMPLES = 40


def write_csv(path: Path, n: int, seed: int = 7) -> None:
    """Long CSV: judge_score, error, ttft_ms, latency_ms, cost_usd, pref for every arm of every request."""
    rng = np.random.default_rng(seed)
    base_score = rng.normal(6.5, 1.5, n)
    base_log_latency = rng.normal(7.0, 0.5, n)
    tokens = rng.lognormal(6.0, 0.8, n)
    request_ids = np.char.add("req-", np.arange(n).astype(str))
    blocks = []
    for i, arm in enumerate(ARMS):
        error = rng.random(n) < 0.02 + 0.002 * i
        ttft = np.exp(base_log_latency - 1.5 + rng.normal(0, 0.3, n) - 0.02 * i)
        latency = np.exp(base_log_latency + rng.normal(0, 0.3, n) + 0.01 * i)
        ttft_s = np.where(error, "inf", np.char.mod("%.1f", ttft))
        latency_s = np.where(error, "inf", np.char.mod("%.1f", latency))
        score = np.char.mod("%.2f", base_score + 0.05 * i + rng.normal(0, 1, n))
        cost = np.char.mod("%.6f", tokens * 3e-6 * (1 + 0.05 * i) * rng.lognormal(0, 0.1, n))
        pref = np.full(n, "") if i == 0 else rng.choice(np.array(["0", "0.5", "1"]), n)
        columns = [
            request_ids,
            np.full(n, arm),
            score,
            error.astype(int).astype(str),
            ttft_s,
            latency_s,
            cost,
            pref,
        ]
        blocks.append(np.stack(columns, axis=1))
    rows = np.concatenate(blocks)
    header = "request_id,arm,judge_score,error,ttft_ms,latency_ms,cost_usd,pref"
    np.savetxt(path, rows, fmt="%s", delimiter=",", header=header, comments="")


def naive_bootstrap_seconds(path: Path, n: int) -> tuple[float, float]:
    """Time a per-resample Python-loop bootstrap of p50/p95/p99 differences: (measured, extrapolated)."""
    rng = np.random.default_rng(0)
    control = np.exp(rng.normal(7, 0.5, n))
    candidate = np.exp(rng.normal(7, 0.5, n))
    started = time.perf_counter()
    for _ in range(NAIVE_TIMED_RESAMPLES):
        index = rng.integers(0, n, n)
        np.quantile(candidate[index], (0.5, 0.95, 0.99)) - np.quantile(control[index], (0.5, 0.95, 0.99))
    measured = time.perf_counter() - started
    comparisons = (len(ARMS) - 1) * 2  # candidates × latency metrics
    del path
    return measured, measured / NAIVE_TIMED_RESAMPLES * RESAMPLES * comparisons


def run_command(path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the command in a fresh process."""
    module = "cli.main"
    command = [
        sys.executable,
        "-m",
        module,
        "analyze",
        "--from-csv",
        str(path),
        "--control",
        "control",
        "--metric",
        "pref=preference",
        "--json",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"analyze failed: {done.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kb / 1024


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        write_csv(path, n)
        size_mb = path.stat().st_size / 1e6
        walls = []
        peak = 0.0
        for _ in range(3):
            wall, peak = run_command(path)
            walls.append(wall)
        measured, naive = naive_bootstrap_seconds(path, n)
    best = min(walls)
    print(f"## `shadowlab analyze --from-csv` — {dt.date.today().isoformat()}\n")
    print(f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}.")
    print(
        f"Input: {n:,} requests × {len(ARMS)} arms × 6 metrics (2 latency metrics with p50/p95/p99), "
        f"{n * len(ARMS):,} rows, {size_mb:.0f} MB."
    )
    print("Command: `.venv/bin/python bench/bench_analyze.py` (runs `analyze --from-csv … --json` 3 times)\n")
    print("| measure | value | goal |")
    print("|---|---|---|")
    print(f"| wall time, best of 3 (incl. interpreter start and imports) | {best:.2f} s | < 3 s |")
    print(f"| wall time, all runs | {', '.join(f'{w:.2f}' for w in walls)} s | |")
    print(f"| peak RSS | {peak:.0f} MB | < 2048 MB |")
    print(
        f"| naive per-resample bootstrap, {NAIVE_TIMED_RESAMPLES} resamples of one comparison | "
        f"{measured:.2f} s | |"
    )
    print(
        f"| naive bootstrap extrapolated to {RESAMPLES} resamples × {(len(ARMS) - 1) * 2} comparisons | "
        f"{naive:.0f} s | |"
    )
    print(f"| ratio naive bootstrap (quantile CIs alone) / whole command | {naive / best:.0f}× | |")


if __name__ == "__main__":
    main()
