"""The experiment spec: valid YAML loads, invalid YAML names the field, start refuses what it must."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowlab.experiment import ExperimentSpecError, check_startable, load_spec, parse_spec
from shadowlab.pricing import UnknownModelPriceError, load_price_table

SPEC: dict[str, Any] = {
    "name": "haiku-vs-mini",
    "control": {"name": "control", "provider": "anthropic", "model": "claude-haiku-4-5"},
    "candidates": [
        {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "params": {"temperature": 0}}
    ],
    "allowed_providers": ["anthropic", "openai"],
    "limits": [{"provider": "anthropic", "model": "claude-haiku-4-5", "rpm": 100, "window_s": 2}],
    "budget": {"usd": 5},
    "plan": {"primary_metric": "judge_score", "guardrails": [{"metric": "ttft_p95_ms", "margin": 0.1}]},
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


def test_a_complete_spec_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    spec = load_spec(path)
    assert [arm.name for arm in spec.arms()] == ["control", "mini"]
    assert spec.limit_for("anthropic", "claude-haiku-4-5") is not None
    assert spec.limit_for("openai", "gpt-4o-mini") is None
    assert spec.plan.alpha == 0.05 and spec.traffic.mode == "backfill"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_with(candidates=[{"name": "mini", "provider": "openai"}]), "candidates[0].model"),
        (_with(budget={"usd": -1}), "budget.usd"),
        (_with(plan={"primary_metric": "x", "min_sample": 50, "max_sample": 10}), "plan.max_sample"),
        (_with(control={**SPEC["control"], "params": {"temprature": 1}}), "control.params.temprature"),
        (_with(candidates=[{**SPEC["control"]}]), "arms"),
        (_with(traffic={"sample_rate": 2}), "traffic.sample_rate"),
        ({k: v for k, v in SPEC.items() if k != "allowed_providers"}, "allowed_providers"),
    ],
)
def test_an_invalid_spec_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ExperimentSpecError, match="experiment: " + re.escape(field) + ":"):
        parse_spec(data)


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ExperimentSpecError, match="not valid YAML"):
        load_spec(path)


def test_start_refuses_a_provider_outside_the_allowlist_and_an_unpriced_model() -> None:
    prices = load_price_table()
    with pytest.raises(ExperimentSpecError, match="provider 'openai' is not in allowed_providers"):
        check_startable(parse_spec(_with(allowed_providers=["anthropic"])), prices)
    unpriced = _with(candidates=[{"name": "x", "provider": "openai", "model": "no-such-model-xyz"}])
    with pytest.raises(UnknownModelPriceError):
        check_startable(parse_spec(unpriced), prices)
    check_startable(parse_spec(SPEC), prices)


def test_the_scoring_section_is_kept_for_the_scoring_stage() -> None:
    scoring = {
        "judges": [{"name": "pref", "kind": "pairwise", "provider": "anthropic", "model": "sim-judge"}]
    }
    spec = parse_spec(_with(scoring=scoring))
    assert spec.model_dump(mode="json")["scoring"] == scoring
    assert parse_spec(SPEC).scoring == {}


def test_judges_are_priced_and_allowlisted_like_arms() -> None:
    prices = load_price_table()
    judge = {"name": "q", "kind": "pointwise", "provider": "anthropic", "model": "no-such-judge-model"}
    spec = parse_spec(_with(scoring={"judges": [judge]}))
    assert spec.models()[-1] == "no-such-judge-model"
    with pytest.raises(UnknownModelPriceError, match="no-such-judge-model"):
        check_startable(spec, prices)
    outside = parse_spec(_with(scoring={"judges": [{**judge, "provider": "vertex"}]}))
    with pytest.raises(ExperimentSpecError, match="judge model 'no-such-judge-model': provider 'vertex'"):
        check_startable(outside, prices)
