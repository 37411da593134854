"""Empty and broken states: a clear message on every page, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.views.common import md_escape

pytestmark = pytest.mark.postgres

PAGES = (
    "views/experiments.py",
    "views/overview.py",
    "views/metrics.py",
    "views/side_by_side.py",
    "views/segments.py",
    "views/live.py",
)


def _messages(at: AppTest) -> list[str]:
    return [e.value for e in [*at.info, *at.warning, *at.error]]


def test_no_experiments_every_page_says_so(migrated: str, app_test: Callable[..., AppTest]) -> None:
    for page in PAGES:
        at = app_test(page)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("No experiments yet" in m for m in _messages(at)), (page, _messages(at))


@pytest.mark.parametrize("page", PAGES[1:])
def test_experiment_without_replays_says_so(
    page: str, migrated: str, app_test: Callable[..., AppTest], new_experiment: Callable[..., int]
) -> None:
    new_experiment()
    at = app_test(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    messages = _messages(at)
    if page == "views/live.py":
        assert "No replays finished in the last hour." in messages
    else:
        assert any("has no replays yet" in m for m in messages), messages


@pytest.mark.parametrize(
    ("analysis", "expected"),
    [
        ({"error": "loader: the control arm 'ctrl' has no replays"}, "the latest analysis failed: loader"),
        ({"n_requests": 3, "comparisons": "not a list"}, "comparisons: expected a list, found str"),
    ],
)
@pytest.mark.parametrize("page", ["views/overview.py", "views/metrics.py"])
def test_failed_analysis_is_a_message(
    page: str,
    analysis: dict[str, object],
    expected: str,
    migrated: str,
    app_test: Callable[..., AppTest],
    new_experiment: Callable[..., int],
) -> None:
    new_experiment(analysis)
    at = app_test(page)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and md_escape(expected) in errors[0], errors


def test_unreachable_database_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", "postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py"))
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    # checked before any page (dashboard/app.py): one message, with where and why
    [error] = [e.value for e in at.error]
    where = "postgresql+psycopg://nobody:***@127.0.0.1:1/none"
    assert error.startswith(f"The database cannot be used: database unreachable at {where}: ")
