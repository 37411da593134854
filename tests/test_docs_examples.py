"""The documented experiment YAML is valid, and every metric its plan names resolves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from analysis.plan import DecisionPlan, resolve_metric
from shadowlab.experiment import parse_spec

ROOT = Path(__file__).resolve().parents[1]
# The columns the database loader always produces, plus the scorer the example's plan names.
COLUMNS = {"error": "binary", "ttft_ms": "latency", "latency_ms": "latency", "cost_usd": "cost"}


def test_the_experiment_example_parses_and_its_plan_resolves() -> None:
    text = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    example = re.search(r"## A complete example\n+```yaml\n(.*?)```", text, flags=re.S)
    assert example is not None
    spec = parse_spec(yaml.safe_load(example.group(1)))
    plan = DecisionPlan.from_dict(spec.plan.model_dump(mode="json"))
    columns = {**COLUMNS, plan.primary_metric: "mean"} if plan.primary_metric not in COLUMNS else COLUMNS
    for metric in (plan.primary_metric, *(g.metric for g in plan.guardrails)):
        resolve_metric(metric, columns)
