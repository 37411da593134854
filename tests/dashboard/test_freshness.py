"""A stale analysis: when replays or scores arrived after the latest snapshot the pages say how old it is
and what arrived, and "Refresh analysis" starts `shadowlab analyze` in the background: the page says it runs
and shows the new snapshot once it is stored; with replays but no analysis at all, "Compute the analysis"
does the same; a refresh that fails says why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from dashboard import refresh
from dashboard.views.common import md_escape
from shadowlab import store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot, Replay
from tests.support.dashboard_seed import PLAN
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres


def _prepare(url: str, experiment_id: int, *, computed_hours_ago: float | None) -> None:
    """The database loader names the judge's metric by the scorer (`judge`); move the snapshot back in time
    (or delete it when `computed_hours_ago` is None)."""
    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        store.experiments.by_id(experiment_id, session=session).plan = {**PLAN, "primary_metric": "judge"}
        snapshots = sa.select(AnalysisSnapshot).where(AnalysisSnapshot.experiment_id == experiment_id)
        for snapshot in session.scalars(snapshots):
            if computed_hours_ago is None:
                session.delete(snapshot)
            else:
                snapshot.computed_at = datetime.now(UTC) - timedelta(hours=computed_hours_ago)
    engine.dispose()


def _snapshots(url: str) -> list[datetime]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = list(conn.scalars(sa.select(AnalysisSnapshot.computed_at).order_by(AnalysisSnapshot.id)))
    engine.dispose()
    return found


def test_a_fresh_analysis_shows_no_warning(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/overview.py", seeded.experiment_id)
    assert not at.exception
    assert not [w.value for w in at.warning if "arrived since" in w.value]
    assert not [b for b in at.button if b.label == "Refresh analysis"]


@pytest.mark.parametrize("page", ["views/metrics.py", "views/segments.py", "views/decide.py"])
def test_newer_replays_and_scores_are_announced_with_a_refresh(
    seeded: Any, app_test: Callable[..., AppTest], page: str
) -> None:
    _prepare(seeded.url, seeded.experiment_id, computed_hours_ago=3)
    at = app_test(page, seeded.experiment_id)
    assert not at.exception
    [stale] = [w.value for w in at.warning if "arrived since" in w.value]
    assert " replays and " in stale and " scores arrived since" in stale
    assert [b.label for b in at.button if b.label == "Refresh analysis"] == ["Refresh analysis"]


def _refreshed(at: AppTest) -> None:
    """Wait for the background refresh this server started to end (it is `shadowlab analyze`, a process of
    its own), then run the page again, as its polling fragment makes the browser do."""
    wait_for(lambda: not refresh.runs() or all(r.done() for r in refresh.runs().values()), "the refresh")
    at.run()


def test_refresh_runs_in_the_background_and_the_page_picks_up_the_new_snapshot(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    _prepare(seeded.url, seeded.experiment_id, computed_hours_ago=3)
    engine = create_engine(seeded.url)
    with engine.connect() as conn:
        since = datetime.now(UTC) - timedelta(hours=3)
        replays = conn.scalar(sa.select(sa.func.count()).where(Replay.finished_at > since))
    engine.dispose()
    at = app_test("views/overview.py", seeded.experiment_id)
    [stale] = [w.value for w in at.warning if "arrived since" in w.value]
    assert f"{replays:,} replays and " in stale and " scores arrived since" in stale
    assert "(3 h ago)" in stale or "(2 h 59 min ago)" in stale

    [button] = [b for b in at.button if b.label == "Refresh analysis"]
    button.click().run()
    assert not at.exception
    # the page is back at once, saying the refresh runs, instead of the button
    assert [i.value for i in at.info if i.value.startswith("Refreshing the analysis… started ")]
    assert not [b for b in at.button if b.label == "Refresh analysis"]
    _refreshed(at)
    assert not at.exception
    found = _snapshots(seeded.url)
    assert len(found) == 2 and found[1] > datetime.now(UTC) - timedelta(minutes=5)
    assert not [w for w in at.warning if "arrived since" in w.value]
    assert not [i for i in at.info if i.value.startswith("Refreshing the analysis")]


def test_replays_without_an_analysis_offer_to_compute_it_and_a_failure_says_why(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    _prepare(seeded.url, seeded.experiment_id, computed_hours_ago=None)
    engine = create_engine(seeded.url)
    with session_scope(session_factory(engine)) as session:  # a primary metric the loader does not produce
        store.experiments.by_id(seeded.experiment_id, session=session).plan = PLAN  # judge_score
    at = app_test("views/overview.py", seeded.experiment_id)
    assert any("but no analysis yet" in i.value for i in at.info)
    [compute] = [b for b in at.button if b.label == "Compute the analysis"]
    compute.click().run()
    _refreshed(at)
    assert not at.exception
    [failed] = [e.value for e in at.error if e.value.startswith("The refresh of the analysis failed: ")]
    assert md_escape("plan metric 'judge_score'") in failed  # `shadowlab analyze`'s error line
    assert _snapshots(seeded.url) == []

    _prepare(seeded.url, seeded.experiment_id, computed_hours_ago=None)  # the plan fixed
    engine.dispose()
    [compute] = [b for b in at.button if b.label == "Compute the analysis"]
    compute.click().run()
    _refreshed(at)
    assert not at.exception
    assert len(_snapshots(seeded.url)) == 1
    boxes = [*at.success, *at.error, *at.info, *at.warning]
    assert any(m.value.startswith("**Verdict: ") for m in boxes)
    assert not [e for e in at.error if e.value.startswith("The refresh of the analysis failed")]
