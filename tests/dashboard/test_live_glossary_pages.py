"""The Live and Glossary pages on a seeded Postgres: rates, errors, spend and the audit trail as text; every
term and the experiment's metrics explained."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from analysis import display
from analysis.glossary import KINDS, METRICS, TERMS
from dashboard.views.common import md_escape
from shadowlab import store
from shadowlab.budget import set_budget
from shadowlab.db import create_engine, session_factory, session_scope
from tests.support.dashboard_seed import no_exception

pytestmark = pytest.mark.postgres


def test_live_page_shows_rates_errors_and_spend(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/live.py")
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Replays/s (last minute)"] == f"{seeded.recent / 60:.2f}"
    assert metrics["Spend"] == display.money(sum(seeded.cost.values()))
    errors = at.dataframe[0].value
    assert list(errors["error code"]) == ["overloaded"]
    assert list(errors["replays"]) == [seeded.errors]


def test_live_page_lists_who_changed_the_budget_and_status_as_text(
    seeded: Any, app_test: Callable[..., AppTest], migrated: str
) -> None:
    assert "no budget change or status change recorded" in [t.value for t in app_test("views/live.py").text]
    engine = create_engine(migrated)
    with session_scope(session_factory(engine)) as session:
        experiment = store.experiments.by_id(seeded.experiment_id, session=session, lock=True)
        set_budget(session, experiment, 30.0, by="ana", reason="**more** <b>prompts</b> [x](http://e.vil)")
        store.experiments.transition(experiment.name, "pause", by="bo", session=session)
    engine.dispose()
    at = app_test("views/live.py")
    no_exception(at)
    table = at.table[-1].value
    assert list(table.columns) == ["when", "by", "what", "change", "reason"]
    assert list(table["by"]) == ["bo", "ana"]  # newest first
    assert list(table["change"]) == [
        md_escape("running → paused"),
        md_escape(f"{display.money(5.0)} → {display.money(30.0)}"),
    ]
    assert list(table["reason"]) == [md_escape(display.MISSING),
                                     md_escape("**more** <b>prompts</b> [x](http://e.vil)")]  # fmt: skip
    shown = [cell.replace("\u2060\\", "") for cell in table["when"]]  # md_escape keeps '14:05' from a link
    assert all(re.fullmatch(r"\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d UTC", when) for when in shown), shown


def test_glossary_explains_every_term_and_the_metrics(
    migrated: str, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/glossary.py")
    no_exception(at)
    shown = " ".join(m.value for m in at.markdown)
    for term, meaning in TERMS.items():
        assert f"**{term}**  \n{meaning}" in shown
    assert f"**{display.metric_name('cost_usd')}**: {METRICS['cost_usd']}" in shown
    assert f"**Preferred over control**: {KINDS['preference']}" in shown


def test_glossary_names_the_experiments_metrics_as_its_pages_do(
    new_experiment: Callable[..., int], app_test: Callable[..., AppTest]
) -> None:
    metrics = [
        ("cost_usd", "cost"),
        ("quality", "mean"),
        ("pref_preference", "preference"),
        ("json_ok", "binary"),
    ]
    comparisons = [{"metric": m, "kind": k, "candidate": "cand"} for m, k in metrics]
    new_experiment({"n_requests": 10, "comparisons": comparisons + comparisons})
    at = app_test("views/glossary.py")
    no_exception(at)
    assert at.subheader[0].value == "Metrics of fresh\\-experiment"
    [listed] = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert listed.splitlines() == [
        f"- **Cost per request**: {METRICS['cost_usd']}",
        f"- **Quality**: {KINDS['mean']}",  # the judge's name, as the Overview and the report show it
        f"- **Preferred over control**: {KINDS['preference']}",
        f"- **Json ok**: {KINDS['binary']}",
    ]
