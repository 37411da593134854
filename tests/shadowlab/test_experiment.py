"""The experiment spec: valid YAML loads, invalid YAML names the field, start refuses what it must."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowlab.experiment import PRICE_HOW_TO, ExperimentSpecError, check_startable, load_spec, parse_spec
from shadowlab.pricing import load_price_table

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
    with pytest.raises(ExperimentSpecError) as caught:
        check_startable(parse_spec(unpriced), prices)
    assert str(caught.value) == (
        "haiku-vs-mini: candidates[0].model (arm 'x'): price of model 'no-such-model-xyz': expected an "
        f"entry in prices.json or SHADOWLAB_PRICES_FILE; {PRICE_HOW_TO}"
    )
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
    with pytest.raises(ExperimentSpecError, match=r"judges\[0\].model \(judge 'q'\): .*'no-such-judge"):
        check_startable(spec, prices)
    outside = parse_spec(_with(scoring={"judges": [{**judge, "provider": "vertex"}]}))
    with pytest.raises(ExperimentSpecError, match="judge model 'no-such-judge-model': provider 'vertex'"):
        check_startable(outside, prices)


def test_a_limit_for_a_model_no_arm_or_judge_uses_is_refused() -> None:
    typo = {"provider": "anthropic", "model": "sim-sonet", "rpm": 10}
    with pytest.raises(ExperimentSpecError) as caught:
        parse_spec(_with(limits=[*SPEC["limits"], typo]))
    assert str(caught.value) == (
        "experiment: limits[1]: expected the provider/model of an arm or a judge "
        "(anthropic/claude-haiku-4-5, openai/gpt-4o-mini), found 'anthropic/sim-sonet', "
        "which would limit nothing"
    )
    # The right model under another provider is a different key: it would limit nothing either.
    with pytest.raises(ExperimentSpecError, match=re.escape("found 'openai/claude-haiku-4-5'")):
        parse_spec(_with(limits=[{"provider": "openai", "model": "claude-haiku-4-5", "rpm": 10}]))


def test_a_judge_model_may_be_limited_with_or_without_its_provider_named() -> None:
    judges = [
        {"name": "q", "kind": "pointwise", "provider": "openai", "model": "gpt-4o"},
        {"name": "p", "kind": "pairwise", "model": "claude-sonnet-4-5"},  # the judges' default provider
    ]
    limits = [
        {"provider": "openai", "model": "gpt-4o", "rpm": 10},
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "concurrency": 2},
    ]
    spec = parse_spec(_with(scoring={"judges": judges}, limits=limits))
    assert spec.limit_for("anthropic", "claude-sonnet-4-5") is not None
    assert ("anthropic", "claude-sonnet-4-5") in spec.judge_models()


def test_experiment_create_with_a_limit_typo_is_one_error_line(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(_with(limits=[{"provider": "anthropic", "model": "sim-sonet", "rpm": 5}])))
    database = tmp_path / "x.db"
    done = cli("experiment", "create", str(path), env={"SHADOWLAB_DATABASE_URL": f"sqlite:///{database}"},
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert (
        "'anthropic/sim-sonet'" in lines[0] and "anthropic/claude-haiku-4-5, openai/gpt-4o-mini" in lines[0]
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert not database.exists()
