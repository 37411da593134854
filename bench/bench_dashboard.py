"""Benchmark: the analysis pages' load with 1,000,000 replays in Postgres (goal < 2 s each).

Run: `.venv/bin/python bench/bench_dashboard.py [N_REQUESTS] [--keep]` (default 500,000 requests × 2 arms).
Seeds a database `shadowlab_bench_dashboard` on the project's Postgres with SQL `generate_series`, stores an
analysis snapshot computed by the analysis engine from those replays, then times each page with streamlit's
AppTest (the server-side script run: queries, snapshot parsing, charts), cold (caches cleared) and warm.
With `--keep` the seeded database stays and a later `--keep` run reuses it (seeding costs minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shadowlab import migrate  # noqa: E402
from shadowlab.db import create_engine  # noqa: E402

ADMIN_URL = os.environ.get(
    "SHADOWLAB_TEST_DATABASE_URL", "postgresql+psycopg://shadowlab:shadowlab@127.0.0.1:54329/shadowlab"
)
DB_NAME = "shadowlab_bench_dashboard"
PLAN = {"primary_metric": "judge", "min_sample": 1000, "max_sample": 1_000_000, "alpha": 0.05}
PRICES = {
    "model-a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6},
    "model-b": {"input_cost_per_token": 2e-6, "output_cost_per_token": 4e-6},
}


def fresh_database(name: str = DB_NAME) -> str:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str = DB_NAME) -> None:
    if name == DB_NAME:
        from dashboard import data

        data.engine.clear()  # the app's pool must not hold connections; FORCE ends any left anyway
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


SEED_SQL = """
INSERT INTO experiments (id, name, status, spec, price_snapshot, plan, budget_usd, created_by,
                         created_at, updated_at)
VALUES (1, 'bench-1m', 'running', '{}', CAST(:prices AS jsonb), CAST(:plan AS jsonb), 5000, 'bench',
        now(), now());
INSERT INTO arms (id, experiment_id, name, role, provider, model, params)
SELECT a, 1, CASE WHEN a = 1 THEN 'control' WHEN :arms = 2 THEN 'candidate' ELSE 'candidate-' || (a - 1) END,
       CASE WHEN a = 1 THEN 'control' ELSE 'candidate' END, 'sim', 'model-' || chr(96 + a), '{}'
FROM generate_series(1, :arms) AS a;
INSERT INTO captured_requests (id, request_id, schema_version, captured_at, ingested_at, service, route,
                               tags, api, model, request, redaction, prompt_fingerprint, prompt_chars,
                               user_turn)
SELECT g, 'req-' || g, 1, now() - interval '1 day', now(), 'svc-' || (g % 5), '/r' || (g % 7),
       jsonb_build_object('language', (ARRAY['en', 'de', 'fr'])[1 + g % 3]),
       'anthropic.messages', 'model-a',
       jsonb_build_object('model', 'model-a', 'max_tokens', 512,
                          'messages',
                          jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'q ' || g))),
       '{}', md5('q ' || g), length('q ' || g), 1  -- what ingest computes (one distinct prompt each)
FROM generate_series(1, :n) AS g;
INSERT INTO replays (experiment_id, arm_id, captured_request_id, status, answer_text, ttft_ms, latency_ms,
                     input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens,
                     reasoning_tokens, cost_usd, untranslated, attempts, started_at, finished_at)
SELECT 1, a, g, CASE WHEN random() < 0.02 THEN 'error' ELSE 'ok' END, 'answer ' || g,
       exp(5.5 + 0.4 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())) * (1 + 0.05 * (a - 1)),
       exp(7.0 + 0.3 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())),
       500 + (g % 1500), 0, g % 300, 100 + (g % 700), 0,
       (500 + (g % 1500)) * 1e-6 * a + (100 + (g % 700)) * 5e-6, '[]', 1,
       now() - interval '2 hours', now() - (g % 3600) * interval '1 second'
FROM generate_series(1, :n) AS g CROSS JOIN generate_series(1, :arms) AS a;
UPDATE replays SET ttft_ms = NULL, latency_ms = NULL, answer_text = NULL, error_code = 'overloaded'
WHERE status = 'error';
INSERT INTO scores (replay_id, scorer_name, scorer_version, value, details, created_at)
SELECT id, 'judge', '1',
       round((6 + arm_id * 0.1 + 1.5 * sqrt(-2 * ln(random())) * cos(2 * pi() * random()))::numeric, 2),
       '{}', now()
FROM replays WHERE status = 'ok';
"""


def seed_rows(url: str, n: int, arms: int = 2) -> float:
    """Seed experiment `bench-1m` (n requests × `arms` arms, scores on every answer); returns seconds."""
    import json

    engine = create_engine(url)
    migrate.upgrade(engine)
    start = time.perf_counter()
    params = {"n": n, "arms": arms, "plan": json.dumps(PLAN), "prices": json.dumps(PRICES)}
    with engine.begin() as conn:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - start


def seed(url: str, n: int) -> float:
    """Seed the rows, then store the analysis snapshot the dashboard reads."""
    seconds = seed_rows(url, n)
    store_snapshot(url)
    return seconds


def store_snapshot(url: str) -> None:
    """The analysis snapshot, written as `shadowlab analyze bench-1m` writes it (what the dashboard reads)."""
    from sqlalchemy.orm import Session

    from analysis.experiment_analysis import analyze_experiment

    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        analyze_experiment(session, "bench-1m", store=True)
    engine.dispose()


def time_page(url: str, page: str, repeats: int = 3) -> tuple[list[float], list[float]]:
    """Cold (caches cleared) and warm run times of one page, in seconds."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["SHADOWLAB_DATABASE_URL"] = url
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(repeats):
        st.cache_data.clear()
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(page)
        st.cache_data.clear()
        start = time.perf_counter()
        at.run()
        cold.append(time.perf_counter() - start)
        failed = [e for e in at.error if not e.value.startswith(("Verdict", "**"))]  # not a verdict box
        assert not at.exception and not failed, at.error
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    return cold, warm


def time_new_since(url: str, repeats: int = 5) -> tuple[float, float]:
    """Best time of `store.snapshots.new_since` (the stale-analysis check every analysis page runs) since the
    snapshot, with the index on scores.created_at (migration 0011) and with it dropped, in this run."""
    from sqlalchemy.orm import Session

    from shadowlab import store

    engine = create_engine(url)

    def best() -> float:
        times = []
        with Session(engine) as session:
            snapshot = store.snapshots.latest(1, session=session)
            assert snapshot is not None
            for _ in range(repeats):
                start = time.perf_counter()
                store.snapshots.new_since(1, snapshot.computed_at, session=session)
                times.append(time.perf_counter() - start)
        return min(times)

    with_index = best()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_scores_created_at"))
    without = best()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_scores_created_at ON scores (created_at)"))
    engine.dispose()
    return with_index, without


PAGES = ("overview", "metrics", "segments", "decide")


def kept_database(n: int) -> str | None:
    """The URL of a database a `--keep` run left with `n` requests seeded and a snapshot stored, if any."""
    url = sa.engine.make_url(ADMIN_URL).set(database=DB_NAME).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            seeded = conn.execute(sa.text("SELECT count(*) FROM captured_requests")).scalar_one()
            snapshots = conn.execute(sa.text("SELECT count(*) FROM analysis_snapshots")).scalar_one()
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()
    return url if seeded == n and snapshots else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=500_000, help="captured requests (× 2 arms)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database; reuse a kept one")
    args = parser.parse_args()
    n = args.n
    url = kept_database(n) if args.keep else None
    seed_s = 0.0
    if url is None:
        url = fresh_database()
        seed_s = seed(url, n)
    try:
        results = {page: time_page(url, f"views/{page}.py") for page in PAGES}
        with_index, without = time_new_since(url)
    finally:
        if args.keep:
            from dashboard import data

            data.engine.clear()
        else:
            drop_database()
    seeded = f"seeded in {seed_s:.0f} s" if seed_s else "kept from an earlier run"
    print("## Dashboard: page load with 1,000,000 replays (`bench/bench_dashboard.py`)\n")
    print(
        f"Command: `.venv/bin/python bench/bench_dashboard.py {n}` · {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f} (1 min, after) · Python "
        f"{platform.python_version()} · {dt.date.today()} · "
        f"{2 * n:,} replays + scores {seeded}. "
        "Server-side page run (AppTest: SQL, snapshot parsing, charts), best / median of 3.\n"
    )
    print("| page | cold (caches cleared) best / median | warm (cached) best / median | goal |")
    print("|---|---:|---:|---|")
    for page, (cold, warm) in results.items():
        ok = "met" if min(cold) < 2 else "**missed**"
        print(
            f"| {page} | {min(cold):.2f} s / {statistics.median(cold):.2f} s | "
            f"{min(warm):.3f} s / {statistics.median(warm):.3f} s | < 2 s ({ok}) |"
        )
    print(
        f"\nStale-analysis check (`store.snapshots.new_since`, every analysis page, cached 60 s), best of 5: "
        f"{with_index * 1000:.0f} ms with the index on scores.created_at, {without * 1000:.0f} ms without it "
        f"({without / with_index:.1f}x)."
    )


if __name__ == "__main__":
    main()
