"""Two-way cluster-robust SEs (conversation × prompt fingerprint): statsmodels agreement, the fallbacks for
a trivial dimension and a non-positive variance, every comparison through `analyze_table`, the CSV contract,
the database path, and the A/A false-positive rate on traffic whose prompts repeat across conversations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from sqlalchemy.orm import Session

from analysis.analyze import analyze_table
from analysis.clustering import clustering_json, clustering_of
from analysis.csv_input import CsvInputError, ExperimentTable, MetricColumn, load_experiment_csv
from analysis.experiment_analysis import analyze_experiment
from analysis.load import load_experiment, table_to_csv
from analysis.stats import cluster_variance, clustering_summary, mean_inference
from analysis.stats.paired import standard_error
from analysis.stats.results import Inference
from demo.repeated_prompts import rates
from shadowlab import migrate
from shadowlab.db import create_engine
from shadowlab.fingerprint import body_fingerprint
from shadowlab.models import Arm, CapturedRequest, Experiment, Replay, Score

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _two_way_data(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Differences with a shared component per conversation and per prompt, crossed at random."""
    rng = np.random.default_rng(seed)
    conversations = rng.integers(0, 150, n)
    prompts = rng.zipf(1.6, n) % 90  # a few prompts repeat a lot, as in FAQ traffic
    d = 0.1 + rng.normal(0, 1, 150)[conversations] + rng.normal(0, 1, 90)[prompts] + rng.normal(0, 1, n)
    return d, conversations.astype(np.int64), prompts.astype(np.int64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_way_se_equals_statsmodels_cov_cluster_2groups(seed: int) -> None:
    d, conversations, prompts = _two_way_data(seed)
    groups = np.column_stack([conversations, prompts])
    # use_t: statsmodels' robust covariances default to normal p-values; we use t with df = min(G₁, G₂) − 1,
    # which statsmodels also computes (df_resid_inference) and applies with use_t=True.
    fit = sm.OLS(d, np.ones(d.size)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)

    ours = mean_inference(d, Inference(clusters=groups), test="paired t")

    # statsmodels adds the three CRV1 terms (cov_cluster_2groups), each with its own G/(G−1)·(n−1)/(n−k):
    # the same estimator, so the SE agrees to rounding.
    assert ours.se == pytest.approx(float(fit.bse[0]), rel=1e-12)
    assert ours.df == min(np.unique(conversations).size, np.unique(prompts).size) - 1
    assert ours.df == fit.df_resid_inference
    assert ours.p_value == pytest.approx(float(fit.pvalues[0]), rel=1e-9)
    low, high = fit.conf_int(0.05)[0]
    assert ours.ci_low == pytest.approx(low, rel=1e-9) and ours.ci_high == pytest.approx(high, rel=1e-9)
    assert ours.test == "paired t, two-way cluster-robust SE"
    one_way = [mean_inference(d, Inference(clusters=g), test="t").se for g in (conversations, prompts)]
    assert ours.se is not None
    assert ours.se > max(se for se in one_way if se is not None)  # both sources of correlation counted


def test_a_trivial_dimension_leaves_one_way_clustering_on_the_other() -> None:
    d, conversations, prompts = _two_way_data(4)
    residuals = d - d.mean()
    singletons = np.arange(d.size, dtype=np.int64)
    one_cluster = np.zeros(d.size, dtype=np.int64)
    by_prompt = standard_error(residuals, clusters=prompts, n_params=1)
    for trivial in (singletons, one_cluster):
        for two_way in (np.column_stack([trivial, prompts]), np.column_stack([prompts, trivial])):
            assert standard_error(residuals, clusters=two_way, n_params=1) == by_prompt
    # statsmodels gets the same from V_prompt + V_singletons − V_singletons
    fit = sm.OLS(d, np.ones(d.size)).fit(
        cov_type="cluster", cov_kwds={"groups": np.column_stack([singletons, prompts])}
    )
    assert by_prompt[0] == pytest.approx(float(fit.bse[0]), rel=1e-12)
    # both trivial: singletons are the iid SE, a single cluster has none
    iid = standard_error(residuals, clusters=None, n_params=1)
    both = standard_error(residuals, clusters=np.column_stack([one_cluster, singletons]), n_params=1)
    assert both[0] == pytest.approx(iid[0], rel=1e-12) and both[1] == iid[1]
    assert standard_error(residuals, clusters=np.column_stack([one_cluster, one_cluster]), n_params=1) == (
        None,
        None,
    )


def test_a_non_positive_two_way_variance_falls_back_to_the_larger_one_way() -> None:
    d = np.array([3.0, 0.0, 0.0, 2.0])
    residuals = d - d.mean()
    conversations = np.array([0, 0, 1, 1], dtype=np.int64)
    prompts = np.array([0, 1, 0, 1], dtype=np.int64)
    # V_conv = V_prompt = 2·0.5/16 = 0.0625, V_both (singletons) = 4/3·6.75/16 = 0.5625: V = −0.4375
    result = cluster_variance(residuals, np.column_stack([conversations, prompts]), n_params=1)
    assert result is not None
    assert result.variance == pytest.approx(0.0625) and (result.df, result.used) == (1.0, (True, False))


def test_the_summary_reports_clusters_largest_share_and_design_effects() -> None:
    rng = np.random.default_rng(5)
    prompts = np.repeat(np.arange(50), 8)  # each prompt 8 times, answered identically
    conversations = np.arange(400, dtype=np.int64)  # every request its own conversation
    d = rng.normal(0, 1, 50)[prompts]

    summary = clustering_summary(d, np.column_stack([conversations, prompts]))

    by_conversation, by_prompt = summary.dimensions
    assert (by_conversation.clusters, by_conversation.largest_share) == (400, 1 / 400)
    assert not by_conversation.used
    assert by_conversation.design_effect == pytest.approx(1.0)  # singletons: the iid variance
    assert (by_prompt.clusters, by_prompt.largest_share, by_prompt.used) == (50, 8 / 400, True)
    assert by_prompt.design_effect is not None and 6.0 < by_prompt.design_effect < 10.0  # ≈ cluster size
    assert summary.design_effect == by_prompt.design_effect


def _table(clusters: np.ndarray | None, seed: int = 6, n: int = 400) -> ExperimentTable:
    """Two arms whose answers to one prompt share an arm-specific effect (60 prompts, each repeated)."""
    rng = np.random.default_rng(seed)
    prompts = np.arange(n) % 60

    def per_prompt(sd: float) -> np.ndarray:
        return np.column_stack([rng.normal(0, sd, 60)[prompts] for _ in range(2)])

    judge = np.array([6.0, 6.2]) + per_prompt(1.0) + rng.normal(0, 0.5, (n, 2))
    error = (rng.random((n, 2)) < 0.1).astype(float)
    latency = np.exp(6 + per_prompt(0.3) + rng.normal(0, 0.2, (n, 2)))
    latency[error == 1.0] = np.inf
    cost = 0.002 * np.exp(per_prompt(0.3) + rng.normal(0, 0.1, (n, 2)))
    preference = np.column_stack([np.full(n, np.nan), rng.choice([0.0, 0.5, 1.0], n)])
    metrics = (
        MetricColumn("judge_score", "mean", judge),
        MetricColumn("error", "binary", error),
        MetricColumn("latency_ms", "latency", latency),
        MetricColumn("cost_usd", "cost", cost),
        MetricColumn("pref", "preference", preference),
    )
    return ExperimentTable(tuple(f"r{i}" for i in range(n)), ("ctrl", "cand"), metrics, clusters, None)


def test_every_comparison_takes_two_way_clusters() -> None:
    n = 400
    prompts = np.arange(n, dtype=np.int64) % 60
    conversations = np.arange(n, dtype=np.int64) // 4
    two_way = analyze_table(
        _table(np.column_stack([conversations, prompts])), control="ctrl", alpha=0.05, adjust="none"
    )
    one_way = analyze_table(_table(conversations), control="ctrl", alpha=0.05, adjust="none")
    for wide, narrow in zip(two_way.comparisons, one_way.comparisons, strict=True):
        assert wide.result.clustered and "two-way cluster-robust SE" in wide.result.primary.test
        assert wide.result.primary.df == 59  # min(100 conversations, 60 prompts) − 1
        assert wide.result.primary.se is not None and narrow.result.primary.se is not None
        if wide.metric in ("judge_score", "latency_ms", "cost_usd"):  # those share a per-prompt effect
            assert wide.result.primary.se > 1.5 * narrow.result.primary.se, wide.metric
    cost = next(c for c in two_way.comparisons if c.metric == "cost_usd").result
    assert cost.relative is not None and cost.relative.df == 59
    latency = next(c for c in two_way.comparisons if c.metric == "latency_ms").result
    p50 = latency.quantiles[0]
    assert p50.supported and p50.ci_low is not None  # its SE came from the two-way variance


def test_the_csv_fingerprint_column_makes_the_table_two_way(tmp_path: Path) -> None:
    table = _table(
        np.column_stack([np.arange(400, dtype=np.int64) // 4, np.arange(400, dtype=np.int64) % 60])
    )
    path = tmp_path / "two_way.csv"
    path.write_text(table_to_csv(table), encoding="utf-8")
    assert path.read_text().splitlines()[0].startswith("request_id,arm,conversation_id,prompt_fingerprint,")

    back = load_experiment_csv(path, control="ctrl", metric_specs=["pref=preference"])

    assert back.cluster_dimensions == ("conversation_id", "prompt_fingerprint")
    assert back.clusters is not None and table.clusters is not None
    for column in range(2):  # the same partition (labels may be renumbered)
        pairs = set(zip(back.clusters[:, column].tolist(), table.clusters[:, column].tolist(), strict=True))
        assert len(pairs) == len(set(table.clusters[:, column].tolist()))
    before = analyze_table(table, control="ctrl", alpha=0.05, adjust="holm")
    after = analyze_table(back, control="ctrl", alpha=0.05, adjust="holm")
    assert [c.result.primary for c in after.comparisons] == [c.result.primary for c in before.comparisons]


def test_a_csv_with_only_a_fingerprint_clusters_on_it(tmp_path: Path) -> None:
    rows = ["request_id,arm,prompt_fingerprint,score"]
    for i in range(40):
        rows += [f"r{i},ctrl,fp{i % 5},{i % 7}", f"r{i},cand,{'' if i == 3 else f'fp{i % 5}'},{i % 5}"]
    path = tmp_path / "fp.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(CsvInputError, match="row 9, column prompt_fingerprint: expected one value per"):
        load_experiment_csv(path, control="ctrl")  # one request, two fingerprints
    path.write_text("\n".join(r.replace(",,", ",fp3,") for r in rows) + "\n", encoding="utf-8")

    table = load_experiment_csv(path, control="ctrl")

    assert table.clusters is not None and table.clusters.shape == (40, 2)
    assert np.unique(table.clusters[:, 0]).size == 40 and np.unique(table.clusters[:, 1]).size == 5
    block = clustering_json(clustering_of(table, control="ctrl", candidate="cand"))
    assert block is not None and [d["used"] for d in block["dimensions"]] == [False, True]
    assert [d["name"] for d in block["dimensions"]] == ["conversation_id", "prompt_fingerprint"]


# --- A/A false positives on repeated prompts -----------------------------------------------------------


def test_repeated_prompts_answered_identically_keep_the_aa_false_positive_rate_with_fingerprints() -> None:
    """Issue 27: both arms one model with `repeat_identical` on the demo's traffic (prompts repeated across
    conversations), 400 seeded runs of `demo.repeated_prompts` through `analyze_table`; the 2,000-run
    version is `bench/bench_clustering.py`."""
    runs = 400
    two_way = rates("two-way", runs, coverage=False)
    by_conversation = rates("conversation", runs, coverage=False)

    assert two_way.rejected_05 <= 2 * 0.05, two_way
    assert two_way.rejected_001 <= 2 * 0.001 + 1 / runs, two_way  # at most one run of 400
    assert by_conversation.rejected_05 >= 0.25, by_conversation  # far above: repeats counted as independent
    assert by_conversation.rejected_001 >= 0.05, by_conversation  # the A/A health check would fail often


# --- through the database ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_load_experiment_clusters_on_conversation_and_stored_or_computed_fingerprint(
    pg_database: str,
) -> None:
    """12 prompts, each asked 5 times in different conversations; half the captures carry a stored
    fingerprint (ingested after the migration), half have NULL (written directly): one partition."""
    engine = create_engine(pg_database)
    migrate.upgrade(engine)
    asks = [f"What are the opening hours of office {k}?" for k in range(12)]
    n = 60
    with Session(engine) as session, session.begin():
        experiment = Experiment(name="repeats", status="running", plan={"primary_metric": "judge_score"})
        session.add(experiment)
        session.flush()
        arms = [
            Arm(experiment_id=experiment.id, name=name, role=role, provider="sim", model="m")
            for name, role in (("control", "control"), ("cand", "candidate"), ("copy", "aa"))
        ]
        session.add_all(arms)
        captures = []
        for i in range(n):
            body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": asks[i % 12]}]}
            captures.append(
                CapturedRequest(
                    request_id=f"c-{i}", captured_at=T0, service="faq", api="anthropic.messages",
                    request=body, conversation_id=None if i == 0 else f"conv-{i // 2}",
                    prompt_fingerprint=body_fingerprint("anthropic.messages", body) if i % 2 else None,
                )
            )  # fmt: skip
        session.add_all(captures)
        session.flush()
        rng = np.random.default_rng(8)
        frozen = {arm.name: rng.normal(7, 1, 12) for arm in arms}  # one answer per prompt and arm
        for i, capture in enumerate(captures):
            for arm in arms:
                replay = Replay(
                    experiment_id=experiment.id, arm_id=arm.id, captured_request_id=capture.id, status="ok",
                    ttft_ms=100.0 + i, latency_ms=400.0 + i, cost_usd=0.001,
                )  # fmt: skip
                session.add(replay)
                session.flush()
                value = float(frozen[arm.name][i % 12])
                session.add(
                    Score(replay_id=replay.id, scorer_name="judge_score", scorer_version="v1", value=value)
                )
    with Session(engine) as session:
        data = load_experiment(session, "repeats")
        document = analyze_experiment(session, "repeats", store=False).document
    engine.dispose()

    clusters = data.table.clusters
    assert clusters is not None and clusters.shape == (n, 2)
    assert data.table.cluster_dimensions == ("conversation_id", "prompt_fingerprint")
    assert np.unique(clusters[:, 0]).size == 31  # 30 conversations and one capture without any
    by_fingerprint = clusters[:, 1]
    assert np.unique(by_fingerprint).size == 12
    assert all(np.unique(by_fingerprint[np.arange(n) % 12 == k]).size == 1 for k in range(12))
    block = document["clustering"]
    assert (block["metric"], block["candidate"], block["n"]) == ("judge_score", "cand", n)
    assert [(d["name"], d["clusters"], d["largest_share"], d["used"]) for d in block["dimensions"]] == [
        ("conversation_id", 31, 2 / n, True),
        ("prompt_fingerprint", 12, 5 / n, True),
    ]
    assert block["design_effect"] > 3  # five identical answers per prompt
    judge = next(c for c in document["comparisons"] if c["metric"] == "judge_score")
    assert judge["test"].endswith("two-way cluster-robust SE") and judge["df"] == 11
