"""The demo's verdict on seeds 1-10: `shadowlab demo --small --seed N`, each checked against the truth built
into the simulator (the verdict, its recommendation, each candidate's deciding checks, every health check
including the A/A noise floor, and the routing). Goal: 10 of 10.

`.venv/bin/python bench/bench_demo_seeds.py [FIRST LAST]` (default 1 10).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_seed(seed: int, folder: Path) -> tuple[bool, str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--small", "--seed", str(seed), "--out", str(folder)],
        capture_output=True, text=True, cwd=REPO, timeout=1800, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    wrong = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("WRONG")]
    verdict = "—"
    analysis = folder / "analysis.json"
    if analysis.exists():
        document = json.loads(analysis.read_text())
        aa = next((c for c in document["health"]["checks"] if c["name"] == "aa_noise_floor"), {})
        verdict = f"{document['verdict']['verdict']}, A/A p = {aa.get('p_value') or 1:.3g}"
    ok = done.returncode == 0 and not wrong
    return ok, verdict if ok else f"{verdict}; " + ("; ".join(wrong) or done.stdout[-300:]), elapsed


def main(first: int, last: int) -> list[str]:
    lines = [
        "## The demo's verdict on seeds (bench/bench_demo_seeds.py)",
        "",
        "`shadowlab demo --small --seed N`: the verdict, its reasons, every health check and the routing",
        "compared with the truth built into the simulator. Goal: every seed matches.",
        "",
        "| seed | matches the truth | verdict, smallest A/A p (Holm) | time |",
        "|---|---|---|---|",
    ]
    matched = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(first, last + 1):
            ok, detail, elapsed = run_seed(seed, Path(tmp) / f"seed-{seed}")
            matched += ok
            lines.append(f"| {seed} | {'yes' if ok else '**NO**'} | {detail} | {elapsed:.0f} s |")
    lines.append(f"\n{matched} of {last - first + 1} seeds match the truth.")
    return lines


if __name__ == "__main__":
    bounds = [int(a) for a in sys.argv[1:3]] or [1, 10]
    for line in main(bounds[0], bounds[-1]):
        print(line)
