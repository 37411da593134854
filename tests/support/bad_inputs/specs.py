"""Bad experiment specs for `experiment create`."""

from __future__ import annotations

from tests.support.bad_inputs.case import (
    SPEC,
    SQLITE,
    BadInput,
    spec_case,
)

SPECS = [
    spec_case("missing file", "", "spec.yaml"),
    spec_case(
        "YAML syntax", "name: x\ncontrol: {name: control\n", "spec.yaml: not valid YAML (expected ',' or '}'"
    ),
    spec_case("candidate without a model", SPEC.replace(", model: gpt-4o-mini", ""), "model"),
    spec_case("no allowed provider", SPEC.replace("[anthropic, openai]", "[]"), "allowed_providers"),
    spec_case("arm with an empty provider", SPEC.replace("provider: openai", "provider: ''"), "provider"),
    spec_case("not a mapping", "- a\n- b\n", "spec.yaml"),
    spec_case(
        "missing control arm",
        SPEC.replace("control: {name: control, provider: anthropic, model: claude-haiku-4-5}\n", ""),
        "control",
    ),
    spec_case("unknown top-level key", SPEC + "colour: blue\n", "colour"),
    spec_case(
        "limits for a model no arm uses",
        SPEC + "limits:\n  - {provider: anthropic, model: sim-sonet, rpm: 10}\n",
        "limits[0]: expected the provider/model of an arm or a judge",
    ),
    spec_case(
        "limits with an unknown field",
        SPEC + "limits:\n  - {provider: anthropic, model: claude-haiku-4-5, rpn: 10}\n",
        "rpn",
    ),
    # what only shows once replays start or the analysis runs, refused at create instead
    spec_case(
        "unknown provider",
        SPEC.replace("provider: openai", "provider: opnai"),
        "error: spec.yaml: candidates[0].provider: expected a registered provider (anthropic, openai, "
        "openai_responses), found 'opnai'",
    ),
    spec_case(
        "unknown provider in the allowlist",
        SPEC.replace("[anthropic, openai]", "[anthropic, openai, vertex]"),
        "error: spec.yaml: allowed_providers[2]: expected a registered provider",
    ),
    spec_case(
        "arm outside the allowlist",
        SPEC.replace("[anthropic, openai]", "[openai]"),
        "error: spec.yaml: control.provider: expected a provider in allowed_providers (openai), "
        "found 'anthropic': it may not receive prompts",
    ),
    spec_case(
        "judge outside the allowlist",
        SPEC.replace("kind: pointwise,", "kind: pointwise, provider: openai_responses,"),
        "error: spec.yaml: scoring.judges[0].provider: expected a provider in allowed_providers",
    ),
    spec_case(
        "unknown primary metric",
        SPEC.replace("primary_metric: judge_score", "primary_metric: judge_scor"),
        "error: spec.yaml: plan.primary_metric: expected a metric this experiment will have (error, ttft_ms, "
        "latency_ms, cost_usd, judge_score; also ttft,",
    ),
    spec_case(
        "primary metric of no scorer",
        SPEC.replace(
            "scoring: {judges: [{name: judge_score, kind: pointwise, model: claude-haiku-4-5}]}\n", ""
        ),
        "a scorer once `scoring` names it), found 'judge_score'",
    ),
    spec_case(
        "unknown guardrail metric",
        SPEC.replace(
            "judge_score}",
            "judge_score, guardrails: [{metric: ttft_p95, margin: 0.1}, {metric: tfft, margin: 0.1}]}",
        ),
        "error: spec.yaml: plan.guardrails[1].metric: expected a metric this experiment will have",
    ),
    spec_case(
        "metric direction of an alias (looked up by column name, it would be ignored)",
        SPEC.replace("judge_score}", "judge_score, metric_directions: {error_rate: lower_is_better}}"),
        "error: spec.yaml: plan.metric_directions: expected a metric column as key (error, ttft_ms, "
        "latency_ms, cost_usd, judge_score), found 'error_rate'",
    ),
    spec_case(
        "no-harm margin of an unknown metric",
        SPEC.replace("judge_score}", "judge_score, no_harm_margins: {latency: 0.2, ttft: 0.1}}"),
        "error: spec.yaml: plan.no_harm_margins: expected a metric column as key",
    ),
    spec_case(
        "scorer of an unknown kind",
        SPEC.replace("kind: pointwise", "kind: pointy"),
        "error: spec.yaml: scoring.judges[0].kind: Input should be 'pointwise' or 'pairwise'",
    ),
    spec_case(
        "a candidate's model has no price",
        SPEC.replace("model: gpt-4o-mini", "model: gpt-9-imaginary"),
        "error: spec.yaml: candidates[0].model (arm 'mini'): price of model 'gpt-9-imaginary': expected an "
        "entry in prices.json or SHADOWLAB_PRICES_FILE; add it to a LiteLLM-format price file",
    ),
    spec_case(
        "a judge's model has no price",
        SPEC.replace("kind: pointwise, model: claude-haiku-4-5", "kind: pointwise, model: claude-imaginary"),
        "error: spec.yaml: scoring.judges[0].model (judge 'judge_score'): price of model 'claude-imaginary'",
    ),
    spec_case("budget negative", SPEC.replace("usd: 1", "usd: -1"), "budget"),
    spec_case("budget a word", SPEC.replace("usd: 1", "usd: lots"), "budget"),
    spec_case("duplicate arm names", SPEC.replace("name: mini", "name: control"), "control"),
    spec_case(
        "no candidates",
        SPEC.replace("  - {name: mini, provider: openai, model: gpt-4o-mini}\n", "").replace(
            "candidates:\n", "candidates: []\n"
        ),
        "candidates",
    ),
]
SPECS[0] = BadInput(
    "spec: missing file", ("experiment", "create", "spec.yaml"), 2, "spec.yaml", SQLITE, {}, "migrated"
)
