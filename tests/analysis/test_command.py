"""The `shadowlab analyze --from-csv` contract (DESIGN §7), run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HEADER = ["request_id", "arm", "judge_score", "error", "latency_ms", "cost_usd", "pref"]


def _cli() -> list[str]:
    return [sys.executable, "-m", "cli.main", "analyze"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_cli(), *args], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def _experiment(n: int = 240, seed: int = 3, drop_candidate: float = 0.0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.normal(6, 1.5)
        for arm, shift in (("ctrl", 0.0), ("cand", 0.4)):
            if arm == "cand" and rng.random() < drop_candidate:
                continue
            error = int(rng.random() < 0.04)
            latency = "inf" if error else f"{np.exp(rng.normal(6.5, 0.4)) * (0.9 if shift else 1):.1f}"
            pref = "" if arm == "ctrl" else str(rng.choice(["0", "0.5", "1"]))
            rows.append(
                [
                    f"r{i}",
                    arm,
                    f"{base + shift + rng.normal(0, 1):.2f}",
                    str(error),
                    latency,
                    f"{0.002 + rng.random() * 0.001:.6f}",
                    pref,
                ]
            )
    return rows


COMPARISON_KEYS = {
    "metric",
    "kind",
    "control",
    "candidate",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "test",
    "statistic",
    "df",
    "null_value",
    "se",
    "control_value",
    "candidate_value",
    "mde",
    "mde_test",
    "mde_planned",
    "mde_planned_n",
    "clustered",
    "cuped",
    "notes",
    "relative",
    "robustness",
    "quantiles",
}
QUANTILE_KEYS = {
    "quantile",
    "n",
    "supported",
    "method",
    "control",
    "candidate",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "reason",
}
TEST_KEYS = {
    "test",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "statistic",
    "df",
    "null_value",
    "notes",
}


def test_json_output_has_every_key_of_the_contract(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "exp.csv", _experiment())
    done = _run("--from-csv", str(csv_path), "--control", "ctrl", "--metric", "pref=preference", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {
        "n_requests",
        "arms",
        "control",
        "alpha",
        "adjust",
        "comparisons",
        "health",
        "verdict",
        "clustering",
    }
    assert (doc["n_requests"], doc["arms"], doc["control"], doc["adjust"]) == (
        240,
        ["ctrl", "cand"],
        "ctrl",
        "holm",
    )
    assert doc["alpha"] == 0.05 and doc["verdict"] is None and doc["clustering"] is None  # no cluster columns
    by_metric = {c["metric"]: c for c in doc["comparisons"]}
    assert {m: c["kind"] for m, c in by_metric.items()} == {
        "judge_score": "mean",
        "error": "binary",
        "latency_ms": "latency",
        "cost_usd": "cost",
        "pref": "preference",
    }
    for comparison in doc["comparisons"]:
        assert set(comparison) == COMPARISON_KEYS
        assert (comparison["control"], comparison["candidate"]) == ("ctrl", "cand")
        assert comparison["ci_low"] <= comparison["estimate"] <= comparison["ci_high"]
        assert comparison["p_adjusted"] >= comparison["p_value"]
        for check in comparison["robustness"]:
            assert set(check) == TEST_KEYS
    score = by_metric["judge_score"]
    assert score["test"] == "paired t" and score["df"] == 239 and score["p_value"] < 0.05
    assert by_metric["latency_ms"]["null_value"] == 1.0 and by_metric["latency_ms"]["estimate"] < 1.0
    assert [q["quantile"] for q in by_metric["latency_ms"]["quantiles"]] == [0.5, 0.95, 0.99]
    for q in by_metric["latency_ms"]["quantiles"]:
        assert set(q) == QUANTILE_KEYS
    p99 = by_metric["latency_ms"]["quantiles"][2]
    assert not p99["supported"] and "needs at least 1000 pairs" in p99["reason"]
    assert set(by_metric["cost_usd"]["relative"]) == TEST_KEYS
    assert by_metric["error"]["df"] is None and by_metric["error"]["test"].startswith("exact McNemar")
    assert by_metric["pref"]["null_value"] == 0.5
    assert set(doc["health"]) == {"passed", "checks"}
    names = [c["name"] for c in doc["health"]["checks"]]
    assert names == [
        *(f"completeness:{m}" for m in by_metric),
        "error_imbalance",
        "minimum_n",
        "aa_noise_floor",
    ]
    for check in doc["health"]["checks"]:
        assert set(check) == {"name", "passed", "p_value", "detail"}


def test_human_output_is_a_table(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "exp.csv", _experiment())
    done = _run("--from-csv", str(csv_path), "--control", "ctrl", "--adjust", "bh")
    assert done.returncode == 0, done.stderr
    assert "p adjusted by bh" in done.stdout
    assert any(line.startswith("judge_score") and "paired t" in line for line in done.stdout.splitlines())
    assert "p50 diff" in done.stdout and "health:" in done.stdout


def test_unequal_missingness_fails_the_completeness_check(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "exp.csv", _experiment(n=1000, drop_candidate=0.05))
    done = _run("--from-csv", str(csv_path), "--control", "ctrl", "--json")
    assert done.returncode == 0, done.stderr
    health = json.loads(done.stdout)["health"]
    completeness = [c for c in health["checks"] if c["name"].startswith("completeness:")]
    assert completeness and all(c["passed"] is False for c in completeness)
    assert health["passed"] is False


GOOD = [["r1", "a", "7", "0", "100", "0.01", ""], ["r1", "b", "8", "0", "90", "0.02", "1"]]


@pytest.mark.parametrize(
    ("rows", "header", "args", "expected"),
    [
        (GOOD, [h for h in HEADER if h != "arm"], (), "row 1, column arm: required column is missing"),
        (GOOD, HEADER, ("--metric", "quality=mean"), "row 1, column quality:"),
        (
            [*GOOD, ["r2", "a", "abc", "0", "100", "0.01", ""]],
            HEADER,
            (),
            "row 4, column judge_score: expected a number, found 'abc'",
        ),
        (
            [*GOOD, ["r1", "b", "6", "0", "80", "0.02", "0"]],
            HEADER,
            (),
            "row 4, column request_id: duplicate request_id 'r1' for arm 'b' (first at row 3)",
        ),
        (
            [*GOOD, ["r2", "", "6", "0", "80", "0.02", ""]],
            HEADER,
            (),
            "row 4, column arm: expected a non-empty",
        ),
        (GOOD, HEADER, ("--control", "zz"), "column arm: control arm 'zz' does not appear"),
        (
            [*GOOD, ["r2", "a", "6", "0.5", "80", "0.02", ""]],
            HEADER,
            ("--metric", "error=binary"),
            "row 4, column error: expected 0 or 1",
        ),
        (
            [*GOOD, ["r2", "a", "6", "0", "-3", "0.02", ""]],
            HEADER,
            (),
            "row 4, column latency_ms: expected a positive number",
        ),
        ([*GOOD, ["r2", "a", "6", "0"]], HEADER, (), "row 4, column latency_ms: expected 7 cells"),
    ],
    ids=[
        "missing-column",
        "unknown-metric-column",
        "non-numeric",
        "duplicate",
        "empty-arm",
        "control-absent",
        "non-binary",
        "negative-latency",
        "short-row",
    ],
)
def test_malformed_csv_exits_2_with_one_line(
    tmp_path: Path, rows: list[list[str]], header: list[str], args: tuple[str, ...], expected: str
) -> None:
    csv_path = _write(tmp_path / "bad.csv", rows, header)
    control = () if "--control" in args else ("--control", "a")
    done = _run("--from-csv", str(csv_path), *control, *args, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0]


def test_plan_arms_reject_an_unknown_arm(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "exp.csv", [*GOOD, ["r1", "c", "8", "0", "90", "0.02", "1"]])
    plan = tmp_path / "plan.yaml"
    plan.write_text("arms: [a, b]\n", encoding="utf-8")
    done = _run("--from-csv", str(csv_path), "--control", "a", "--plan", str(plan), "--json")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: row 4, column arm: unknown arm 'c'; the plan names a, b"
