"""`shadowlab analyze EXPERIMENT` on Postgres and SQLite equals `analyze --from-csv` on the exported data."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.decision import VERDICTS
from analysis.experiment_analysis import analyze_experiment
from analysis.fetch import cancel_queries, snapshot_sessions
from analysis.load import ExperimentLoadError, load_experiment
from analysis.plan import PlanError
from analysis.stats import decisive_pairs_binomial
from shadowlab import migrate
from shadowlab.db import create_engine
from shadowlab.models import AnalysisSnapshot, Arm, CapturedRequest, Experiment, Preference, Replay, Score
from tests.support.analysis_seed import PLAN, T0, seed_experiment


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shadowlab.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.mark.postgres
def test_analyze_experiment_equals_analyze_from_csv(
    database_url: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    seed_experiment(database_url, "exp-a", n=160)
    env = {"SHADOWLAB_DATABASE_URL": database_url}
    csv_path, plan_path = tmp_path / "exp.csv", tmp_path / "plan.json"
    stored = cli(
        "analyze",
        "exp-a",
        "--json",
        "--export-csv",
        str(csv_path),
        "--export-plan",
        str(plan_path),
        env=env,
        cwd=tmp_path,
    )
    assert stored.returncode == 0, stored.stderr
    from_csv = cli(
        "analyze",
        "--from-csv",
        str(csv_path),
        "--control",
        "control",
        "--plan",
        str(plan_path),
        "--metric",
        "pref_judge_pairwise=preference",
        "--json",
        env={},
        cwd=tmp_path,
    )
    assert from_csv.returncode == 0, from_csv.stderr
    db_doc, csv_doc = json.loads(stored.stdout), json.loads(from_csv.stdout)
    assert db_doc == csv_doc
    assert db_doc["arms"] == ["control", "cand", "aa"]
    assert {c["metric"] for c in db_doc["comparisons"]} == {
        "error",
        "ttft_ms",
        "latency_ms",
        "cost_usd",
        "judge_score",
        "pref_judge_pairwise",
    }
    assert db_doc["verdict"]["verdict"] in VERDICTS
    assert db_doc["verdict"]["ranking"]["reference"] == "control"
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(AnalysisSnapshot.verdict, AnalysisSnapshot.n_requests)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(db_doc["verdict"]["verdict"], 160)]


@pytest.mark.postgres
def test_loader_aligns_arms_scores_and_preferences(database_url: str) -> None:
    seed_experiment(database_url, "exp-b", n=40, seed=4)
    engine = create_engine(database_url)
    with Session(engine) as session:
        data = load_experiment(session, "exp-b")
        with pytest.raises(ExperimentLoadError, match="experiment 'nope': not found"):
            load_experiment(session, "nope")
    engine.dispose()
    table = data.table
    assert (data.control, data.aa_arm, table.arms) == ("control", "aa", ("control", "cand", "aa"))
    by_name = {m.name: m for m in table.metrics}
    error, ttft = by_name["error"].values, by_name["ttft_ms"].values
    assert np.array_equal(np.isinf(ttft), error == 1.0)
    judge = by_name["judge_score"].values
    assert np.nanmean(judge) > 3.0  # the latest version (v2), not v1 whose every value is 1
    assert np.all(np.isnan(judge[error == 1]))
    pref = by_name["pref_judge_pairwise"].values
    assert np.all(np.isnan(pref[:, 0])) and not np.isnan(pref[:, 1]).any()
    assert set(np.unique(pref[:, 1])) <= {0.0, 0.5, 1.0}
    assert data.pairwise.first.size == 40 and table.clusters is not None


@pytest.mark.postgres
def test_a_plan_metric_the_experiment_lacks_stops_the_load(database_url: str) -> None:
    """The plan is checked once the scorer versions are known, before the scores are read (the replays and
    captures read beside the versions are cancelled if still running); the session goes on."""
    seed_experiment(database_url, "exp-p", n=40, plan={**PLAN, "primary_metric": "bleu"}, seed=5)
    engine = create_engine(database_url)
    with Session(engine) as session:
        with pytest.raises(PlanError, match="experiment 'exp-p' plan: plan metric 'bleu'"):
            load_experiment(session, "exp-p", check=True)
        assert load_experiment(session, "exp-p").table.request_ids[:1] == ("req-0",)
    engine.dispose()


@pytest.mark.postgres
def test_cancel_queries_stops_a_helper_read_at_once(pg_database: str) -> None:
    engine = create_engine(pg_database)
    with Session(engine) as session, snapshot_sessions(session, 1) as (helper,):
        pid = helper.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(1) as pool:
            sleeping = pool.submit(helper.execute, sa.text("SELECT pg_sleep(600)"))
            with engine.connect() as watcher:  # cancel once the backend runs the read, not before
                state = sa.text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid")
                deadline = time.monotonic() + 30
                while watcher.execute(state, {"pid": pid}).scalar_one() != "PgSleep":
                    assert time.monotonic() < deadline and not sleeping.done()
                    watcher.rollback()
            cancel_queries([helper])
            with pytest.raises(sa.exc.OperationalError, match="canceling statement"):
                sleeping.result(timeout=60)
    engine.dispose()


@pytest.mark.postgres
def test_snapshot_is_stored_per_run(pg_database: str) -> None:
    seed_experiment(pg_database, "exp-c", n=120, seed=2)
    engine = create_engine(pg_database)
    with Session(engine) as session, session.begin():
        first = analyze_experiment(session, "exp-c")
        second = analyze_experiment(session, "exp-c")
    with engine.connect() as conn:
        ids = conn.execute(sa.select(AnalysisSnapshot.id).order_by(AnalysisSnapshot.id)).scalars().all()
    engine.dispose()
    assert ids == [first.snapshot_id, second.snapshot_id]
    assert first.document == second.document


@pytest.mark.postgres
def test_a_judge_that_disagrees_with_itself_across_orders_scores_half(database_url: str) -> None:
    """docs/scoring.md: both orders agree → that result; any disagreement (win/loss, win/tie) → ½."""
    # Per request: the candidate's result with the candidate shown first ("ab") and second ("ba").
    shown = [("win", "win"), ("win", "loss"), ("win", "tie"), ("tie", "tie"), ("loss", "loss"), ("win", None)]
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        experiment = Experiment(name="orders", status="running", plan=PLAN)
        session.add(experiment)
        session.flush()
        control, cand = (
            Arm(experiment_id=experiment.id, name=name, role=role, provider="sim", model=name)
            for name, role in (("control", "control"), ("cand", "candidate"))
        )
        session.add_all([control, cand])
        session.flush()
        for i, results in enumerate(shown):
            request = CapturedRequest(
                request_id=f"o-{i}", captured_at=T0, service="chat", api="anthropic.messages", request={}
            )
            session.add(request)
            session.flush()
            for arm in (control, cand):
                session.add(
                    Replay(experiment_id=experiment.id, arm_id=arm.id, captured_request_id=request.id,
                           status="ok", ttft_ms=100.0, latency_ms=400.0, cost_usd=0.001)
                )  # fmt: skip
            for order, result in zip(("ab", "ba"), results, strict=True):
                if result is None:
                    continue
                # Stored as scoring/pairwise.py stores it: canonical, arm A = control, B = candidate; the
                # order shown is only in `order_shown`.
                stored = {"win": "b", "loss": "a", "tie": "tie"}[result]
                session.add(
                    Preference(experiment_id=experiment.id, captured_request_id=request.id,
                               arm_a_id=control.id, arm_b_id=cand.id, scorer_name="pairwise",
                               scorer_version="v1", order_shown=order, result=stored)
                )  # fmt: skip
    with Session(engine) as session:
        data = load_experiment(session, "orders")
    engine.dispose()
    pref = {m.name: m for m in data.table.metrics}["pref_pairwise"].values[:, 1]
    assert pref.tolist() == [1.0, 0.5, 0.5, 0.5, 0.0, 1.0]
    binomial = decisive_pairs_binomial(pref)
    assert (binomial.n, binomial.statistic) == (3, 2.0)  # the split pairs are not decisive
    assert data.judge_orders == (2, 5)  # judged both ways: 5; a different verdict per order: 2


@pytest.mark.postgres
def test_experiments_replayed_together_each_read_only_their_own_rows(database_url: str) -> None:
    """Two experiments whose captures, replays and scores interleave in id order (replayed at the same time):
    each reads its own rows and its own latest scorer version, whether its ids fill their range enough to be
    read as one (the other experiment's rows dropped after reading) or not (read through its replays)."""
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    n = 12
    conversations = (None, "", "gespräch-ü", "会话 1")
    with Session(engine) as session, session.begin():
        session.add_all([Experiment(id=e, name=name, status="running") for e, name in ((1, "a"), (2, "b"))])
        session.add_all([
            Arm(id=arm, experiment_id=eid, name=name, role=role, provider="sim", model="m")
            for arm, eid, name, role in ((1, 1, "control", "control"), (2, 1, "cand", "candidate"),
                                         (3, 2, "control", "control"), (4, 2, "cand", "candidate"),
                                         (5, 2, "aa", "aa"))
        ])  # fmt: skip
        session.flush()
        # a's captures are every third id (a third of their range: read through its replays), b's the others
        session.execute(sa.insert(CapturedRequest), [
            {"id": c, "request_id": f"req-{c}", "captured_at": T0, "service": "svc", "route": f"/ü{c % 2}",
             "conversation_id": conversations[c % 4], "tags": {}, "api": "anthropic.messages", "request": {}}
            for c in range(1, 3 * n + 1)
        ])  # fmt: skip
        replays: list[dict[str, Any]] = []
        scores: list[dict[str, Any]] = []
        for i in range(n):
            # per request: a's control, b's three arms, a's candidate (a holds 2 ids in 5, b 3 in 5)
            order = ((1, 3 * i + 3), (3, 3 * i + 1), (4, 3 * i + 2), (5, 3 * i + 1), (2, 3 * i + 3))
            for arm, capture in order:
                replay_id = len(replays) + 1
                replays.append({
                    "id": replay_id, "experiment_id": 1 if arm <= 2 else 2, "arm_id": arm,
                    "captured_request_id": capture, "status": "ok", "ttft_ms": 100.0 + replay_id,
                    "latency_ms": 200.0, "cost_usd": 0.001, "input_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1,
                    "reasoning_tokens": 0, "untranslated": [], "attempts": 1,
                })  # fmt: skip
                # a's judge is version v1 only; b also wrote a later v2, which must not become a's latest
                versions = (("v1", 1),) if arm <= 2 else (("v1", 1), ("v2", 2))
                scores += [{"replay_id": replay_id, "scorer_name": "judge", "scorer_version": version,
                            "value": float(replay_id * day), "details": {},
                            "created_at": T0 + timedelta(days=day)} for version, day in versions]  # fmt: skip
                if arm > 2:  # b has a second scorer (read with a column saying whose each score is)
                    scores.append({"replay_id": replay_id, "scorer_name": "exact", "scorer_version": "1",
                                   "value": float(replay_id % 2), "details": {},
                                   "created_at": T0})  # fmt: skip
        session.execute(sa.insert(Replay), replays)
        session.execute(sa.insert(Score), scores)
    with Session(engine) as session:
        a, b = load_experiment(session, "a"), load_experiment(session, "b")
    engine.dispose()
    assert a.table.request_ids == tuple(f"req-{3 * i + 3}" for i in range(n))
    assert b.table.request_ids == tuple(f"req-{c}" for i in range(n) for c in (3 * i + 1, 3 * i + 2))
    for data, arms in ((a, (1, 2)), (b, (3, 4, 5))):
        mine = [r for r in replays if r["arm_id"] in arms]
        request = {rid: i for i, rid in enumerate(data.table.request_ids)}
        judge = next(m for m in data.table.metrics if m.name == "judge").values
        ttft = next(m for m in data.table.metrics if m.name == "ttft_ms").values
        expected_judge = np.full_like(judge, np.nan)
        expected_ttft = np.full_like(ttft, np.nan)
        for r in mine:
            cell = request[f"req-{r['captured_request_id']}"], arms.index(r["arm_id"])
            expected_judge[cell] = r["id"] * (1 if arms == (1, 2) else 2)  # a: v1, b: its latest v2
            expected_ttft[cell] = r["ttft_ms"]
        np.testing.assert_array_equal(judge, expected_judge)
        np.testing.assert_array_equal(ttft, expected_ttft)
    exact = next(m for m in b.table.metrics if m.name == "exact")
    request = {rid: i for i, rid in enumerate(b.table.request_ids)}
    expected_exact = np.full_like(exact.values, np.nan)
    for r in replays:
        if r["arm_id"] > 2:
            expected_exact[request[f"req-{r['captured_request_id']}"], r["arm_id"] - 3] = r["id"] % 2
    np.testing.assert_array_equal(exact.values, expected_exact)
    assert exact.kind == "binary" and "exact" not in {m.name for m in a.table.metrics}
    # conversation labels survive the byte-level read: NULL and "" are each request's own cluster, and the
    # two non-ASCII ids are one cluster each
    assert a.table.clusters is not None and b.table.clusters is not None
    labels = b.table.clusters[:, 0]
    named = [conversations[int(rid.split("-")[1]) % 4] for rid in b.table.request_ids]
    for label in ("gespräch-ü", "会话 1"):
        assert len({labels[i] for i, c in enumerate(named) if c == label}) == 1
    anonymous = [labels[i] for i, c in enumerate(named) if not c]
    assert len(set(anonymous)) == len(anonymous)
    assert {f.route for f in b.facts.distinct} == {"/ü0", "/ü1"}


@pytest.mark.postgres
def test_a_load_in_the_transaction_that_wrote_rows_reads_them(database_url: str) -> None:
    """On Postgres the load reads on more connections under the transaction's exported snapshot; those would
    not see rows the transaction wrote itself, so after a write it reads on the transaction's own."""
    seed_experiment(database_url, "exp-w", n=40, seed=4)
    engine = create_engine(database_url)
    with Session(engine) as session, session.begin():
        before = {m.name: m.values for m in load_experiment(session, "exp-w").table.metrics}["judge_score"]
        session.execute(sa.update(Score).where(Score.scorer_version == "v2").values(value=7.25))
        after = {m.name: m.values for m in load_experiment(session, "exp-w").table.metrics}["judge_score"]
        session.rollback()
    engine.dispose()
    scored = ~np.isnan(before)
    assert scored.sum() > 60 and np.array_equal(scored, ~np.isnan(after))
    assert not (before[scored] == 7.25).all() and (after[scored] == 7.25).all()
