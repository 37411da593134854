"""Redaction worst cases: hostile 880 KiB captures through `Redactor.redact_capture` (goal < 200 ms each).

Two kinds of worst case: text built to make a regex backtrack (long runs that almost match a rule), and
text dense with real matches (each match costs a Python call). The baseline, in the same run, is 880 KiB
of prose; the old email regex (the plain `[local]+@domain`, quadratic under `re`) is timed on the first
case at small sizes, to show what the linear finder replaced. Prints a markdown section; exits 1 when a
hostile case takes 200 ms or more.

    .venv/bin/python bench/bench_redact.py [--kib 880] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ingest.redact import Redactor
from ingest.redact_rules import EmailPattern

CASES: dict[str, tuple[str, Callable[[int], str]]] = {
    # name: (what it stresses, text of n characters)
    "local part without a domain": ("email", lambda n: "a" * (n - 2) + "@x"),
    "dotted local part, @ at the end": ("email", lambda n: ".b" * (n // 2) + "@"),
    "one-letter labels, no top-level domain": ("email", lambda n: "x@b" + ".b" * (n // 2)),
    "labels ending in dots": ("email", lambda n: "x@" + "b." * (n // 2)),
    "hyphens in a label": ("email", lambda n: "x@" + "b-" * (n // 2)),
    "many @ without domains": ("email", lambda n: "a@" * (n // 2)),
    "emails chained inside one run": ("email", lambda n: "a@b.co." * (n // 7)),
    "secret key name, then spaces": ("aws_secret", lambda n: "aws_secret_access_key" + " " * n),
    "Bearer, then spaces": ("bearer_token", lambda n: "Bearer" + " " * n),
    "GitHub tokens one character short": ("github_token", lambda n: (" ghp_" + "a" * 35) * (n // 40)),
    "OpenAI keys one character short": ("openai_key", lambda n: ("sk-" + "a" * 19 + " ") * (n // 23)),
    "PEM BEGIN lines without an END": ("private_key", lambda n: "-----BEGIN PRIVATE KEY-----" * (n // 27)),
    "PEM body without its END": (
        "private_key",
        lambda n: "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD\n" * (n // 5),
    ),
    "Slack prefixes one character short": ("slack_token", lambda n: "xoxb-123456789 " * (n // 15)),
    "digits split by double spaces": ("card", lambda n: "4111  " * (n // 6)),
    "long numbers in tool input": ("numbers", lambda n: "4111111111111111," * (n // 17)),
    "digits and spaces": ("phone, card", lambda n: "1 " * (n // 2)),
    "digit groups joined by hyphens": ("phone, card", lambda n: "1234-" * (n // 5)),
    "an email every 7 characters": ("matches", lambda n: "a@b.co " * (n // 7)),
    "distinct emails": ("matches", lambda n: " ".join(f"u{i}@ex.io" for i in range(n // 10))),
    "card numbers": ("matches", lambda n: "4111 1111 1111 1111 " * (n // 20)),
    "phone numbers": ("matches", lambda n: "+1 415 555 2671 " * (n // 16)),
}
GOAL_MS = 200  # any 880 KiB capture (issue 20); the benchmark exits 1 when a case takes longer
PROSE = "The parcel left our warehouse on Monday and should reach you within three working days. "


def capture(content: Any) -> dict[str, Any]:
    return {"model": "claude-bench", "max_tokens": 64, "messages": [{"role": "user", "content": content}]}


def best_ms(run: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs, in ms of this process's CPU time: on a shared machine the wall time
    measures the other processes too (at load 5 it read 2-3 times the CPU time)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=880, help="size of each hostile string")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    n, redactor = args.kib * 1024, Redactor()

    print(f"## Redaction worst cases at {args.kib} KiB (`bench/bench_redact.py`)")
    print()
    print(
        f"Command: `.venv/bin/python bench/bench_redact.py --kib {args.kib} --repeat {args.repeat}` · "
        f"{os.cpu_count()} cores, Python {platform.python_version()} · "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · load {os.getloadavg()[0]:.1f} at the start. "
        f"`Redactor.redact_capture` on one user message holding the text, best of {args.repeat}, CPU time."
    )
    print()
    print("| case | stresses | ms (CPU) | replaced |")
    print("|---|---|---:|---:|")
    worst = 0.0
    prose = (PROSE * (n // len(PROSE) + 1))[:n]
    rows: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("prose (baseline)", "—", lambda: capture(prose)),
        *((name, what, lambda make=make: capture(make(n))) for name, (what, make) in CASES.items()),
        (f"{n // 12:,} strings `a@b.cc x`", "per-string cost", lambda: capture(["a@b.cc x"] * (n // 12))),
    ]
    for name, what, build in rows:
        request = build()
        ms = best_ms(partial(redactor.redact_capture, request, None), args.repeat)
        replaced = sum(redactor.redact_capture(request, None).counts.values())
        worst = max(worst, ms) if what != "—" else worst
        print(f"| {name} | {what} | {ms:,.1f} | {replaced:,} |")
    print()
    print(f"Slowest hostile case: {worst:,.0f} ms (goal < {GOAL_MS} ms).")
    print()
    plain = re.compile(EmailPattern.pattern)
    sizes = (8, 16, 32)
    timings = [best_ms(partial(plain.sub, "", "a" * (k * 1024 - 2) + "@x"), 1) for k in sizes]
    projected = timings[-1] * (args.kib / sizes[-1]) ** 2 / 1000
    print(
        "The old email regex on the first case: "
        + ", ".join(f"{k} KiB {ms:,.0f} ms" for k, ms in zip(sizes, timings, strict=True))
        + f"; quadratic, so ≈ {projected:,.0f} s at {args.kib} KiB."
    )
    if worst >= GOAL_MS:
        sys.exit(f"error: the slowest hostile case took {worst:,.0f} ms, expected < {GOAL_MS} ms")


if __name__ == "__main__":
    main()
