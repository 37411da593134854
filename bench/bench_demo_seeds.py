"""The demo's verdict on seeds 1-10: `shadowlab demo --small --seed N`, each checked against the truth built
into the simulator (the verdict, its recommendation, each candidate's deciding checks, every health check
including the A/A noise floor, and the routing). Goal: 10 of 10.

A seed MATCHes when the demo exits 0, prints its MATCH line and no WRONG line, and wrote analysis.json,
report.html and routing.yaml; otherwise it is WRONG, and the script exits non-zero after the table. This is
where the verdict is checked on several seeds: `make test` runs seed 1 only (tests/e2e/test_demo.py).

`.venv/bin/python bench/bench_demo_seeds.py [FIRST LAST]` (default 1 10).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MATCHED = "the verdict, its reasons, the health checks and the routing MATCH the truth"
OUTPUTS = ("analysis.json", "report.html", "routing.yaml")


def run_seed(seed: int, folder: Path) -> tuple[bool, str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--small", "--seed", str(seed), "--out", str(folder)],
        capture_output=True, text=True, cwd=REPO, timeout=1800, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    lines = [line.strip() for line in done.stdout.splitlines()]
    wrong = [line for line in lines if line.startswith("WRONG") or line.endswith(" WRONG")]
    missing = [name for name in OUTPUTS if not (folder / name).exists()]
    verdict = "—"
    if "analysis.json" not in missing:
        document = json.loads((folder / "analysis.json").read_text())
        checks: list[dict[str, Any]] = document["health"]["checks"]
        aa = next((c for c in checks if c["name"] == "aa_noise_floor"), {})
        verdict = f"{document['verdict']['verdict']}, A/A p = {aa.get('p_value') or 1:.3g}"
    ok = done.returncode == 0 and MATCHED in done.stdout and not wrong and not missing
    why = wrong + [f"missing {name}" for name in missing] or [f"exit {done.returncode}: {done.stdout[-300:]}"]
    return ok, verdict if ok else f"{verdict}; " + "; ".join(why), elapsed


def main(first: int, last: int) -> tuple[list[str], list[int]]:
    lines = [
        "## The demo's verdict on seeds (bench/bench_demo_seeds.py)",
        "",
        "`shadowlab demo --small --seed N`: the verdict, its reasons, every health check and the routing",
        "compared with the truth built into the simulator. Goal: every seed matches.",
        "",
        "| seed | against the truth | verdict, smallest A/A p (Holm) | time |",
        "|---|---|---|---|",
    ]
    wrong: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(first, last + 1):
            ok, detail, elapsed = run_seed(seed, Path(tmp) / f"seed-{seed}")
            wrong += [] if ok else [seed]
            lines.append(f"| {seed} | {'MATCH' if ok else '**WRONG**'} | {detail} | {elapsed:.0f} s |")
    lines.append(f"\n{last - first + 1 - len(wrong)} of {last - first + 1} seeds match the truth.")
    return lines, wrong


if __name__ == "__main__":
    bounds = [int(a) for a in sys.argv[1:3]] or [1, 10]
    table, wrong_seeds = main(bounds[0], bounds[-1])
    for line in table:
        print(line, flush=True)
    if wrong_seeds:
        raise SystemExit(f"error: seed(s) {', '.join(map(str, wrong_seeds))} do not match the truth")
