"""The report and the routing of the seeded demo experiment, end to end through the CLI (one demo run)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.display import VERDICT_LABELS
from analysis.facts import RequestFacts
from analysis.report import TOP_SEGMENTS, power_sentence
from analysis.routing_table import read_routing_table
from analysis.rule_mde import mde_words

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
EXPERIMENT = "sonnet-to-cheaper"


@pytest.fixture(scope="module")
def demo_db(
    tmp_path_factory: pytest.TempPathFactory, small_demo: Any
) -> Iterator[tuple[dict[str, str], Path]]:
    """A copy of the demo's seeded SQLite experiment; the first faq capture's answer holds a script tag."""
    assert small_demo.returncode == 0, small_demo.output[-2000:]
    folder = tmp_path_factory.mktemp("demo")
    shutil.copy(small_demo.folder / "shadowlab.db", folder / "shadowlab.db")
    db = folder / "shadowlab.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE captured_requests SET response = ? WHERE id = "
            "(SELECT min(id) FROM captured_requests WHERE route = 'faq')",
            (json.dumps({"text": HOSTILE}),),
        )
    yield {"SHADOWLAB_DATABASE_URL": f"sqlite:///{db}"}, folder


@pytest.mark.slow
def test_the_demo_experiment_reads_the_same_from_its_database_and_from_its_csv(
    small_demo: Any, tmp_path: Path, cli: Any
) -> None:
    """The demo's experiment analysed from its SQLite database and from the CSV and plan it exports: the same
    document (test_load holds the same on Postgres and SQLite with a seeded experiment)."""
    assert small_demo.returncode == 0, small_demo.output[-2000:]
    shutil.copy(small_demo.folder / "shadowlab.db", tmp_path / "shadowlab.db")
    env = {"SHADOWLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'shadowlab.db'}"}
    stored = cli("analyze", EXPERIMENT, "--json", "--export-csv", "demo.csv", "--export-plan", "plan.json",
                 env=env, cwd=tmp_path)  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    header = (tmp_path / "demo.csv").read_text().splitlines()[0].split(",")
    preferences = [f"--metric={c}=preference" for c in header if c.startswith("pref_")]
    assert preferences  # the demo's pairwise judge
    from_csv = cli("analyze", "--from-csv", "demo.csv", "--control", "control", "--plan", "plan.json",
                   *preferences, "--json", env={}, cwd=tmp_path)  # fmt: skip
    assert from_csv.returncode == 0, from_csv.stderr
    assert json.loads(stored.stdout) == json.loads(from_csv.stdout)


@pytest.mark.slow
def test_route_export_sends_only_easy_routes_to_haiku(demo_db: tuple[dict[str, str], Path], cli: Any) -> None:
    """The small demo (240 prompts, a sequential plan): hard routes stay on the control; an easy route
    moves only when its always-valid, Holm-adjusted claim holds (with ~70 prompts a segment it may not
    yet: then its reason says the margin is not yet shown). The 1,000-prompt demo of seed 1 routes faq
    (explain not yet); bench/bench_routing.py measures how often each route moves, and
    tests/analysis/test_routing.py checks the rule on constructed data."""
    env, folder = demo_db
    out = folder / "routing.yaml"
    done = cli("route", EXPERIMENT, "--export", str(out), "--json", env=env, cwd=folder)
    assert done.returncode == 0, done.stderr
    block = json.loads(done.stdout)
    arms = {s["segment"]: (s["arm"], s["status"]) for s in block["segments"]}
    assert arms["support-bot/troubleshoot"][0] == arms["code-assist/refactor"][0] == "control"
    assert arms["search/summarise"] == ("control", "too_small")  # 27 requests < 30
    for s in block["segments"]:
        if s["segment"] in ("support-bot/faq", "code-assist/explain") and s["status"] != "routed":
            assert "not yet shown to stay within its margin" in s["reason"] or "Holm" in s["reason"], s
    if any(status == "routed" for _, status in arms.values()):
        assert {seg for seg, (_, status) in arms.items() if status == "routed"} <= {
            "support-bot/faq",
            "code-assist/explain",
        }
        assert block["saving"]["ci_low"] > 0
    table = read_routing_table(out)
    for s in block["segments"]:
        service, route = s["segment"].split("/")
        assert table.route(RequestFacts(service, route, {}, 50, 1)).arm == s["arm"]


@pytest.mark.slow
def test_report_formats_and_html_in_chromium(
    demo_db: tuple[dict[str, str], Path], cli: Any, browser: Any, artifacts_dir: Path
) -> None:
    env, folder = demo_db
    as_json = cli("report", EXPERIMENT, "--format", "json", env=env, cwd=folder)
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert {"verdict", "segments", "routing", "scorers", "decisions", "experiment"} <= set(doc)
    assert doc["scorers"] and doc["experiment"]["price_snapshot"]
    verdict = doc["verdict"]["verdict"]
    label = VERDICT_LABELS[verdict]
    md = cli("report", EXPERIMENT, "--format", "md", env=env, cwd=folder)
    assert md.returncode == 0 and f"**{label}**: " in md.stdout and "<script>" not in md.stdout
    page_file = folder / "report.html"
    done = cli("report", EXPERIMENT, "--format", "html", "--out", str(page_file), env=env, cwd=folder)
    assert done.returncode == 0, done.stderr
    text = page_file.read_text(encoding="utf-8")
    assert "<script" not in text.replace("&lt;script", "")
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        assert page.title() == f"shadowlab report: {EXPERIMENT}"
        assert page.is_visible("#verdict") and page.inner_text("#verdict").startswith(label)
        assert page.is_visible("#headline") and verdict not in page.inner_text("#verdict")
        assert HOSTILE in page.inner_text("body")
        assert page.locator("svg").count() >= 5
        # every forest plot has a labelled axis with ticks in the metric's unit
        assert page.locator("svg .axis-title").count() == page.locator("svg").count()
        # segments: the ones that matter in a table, the rest folded away
        if doc["segments"]:
            assert page.locator("#top-segments tr").count() <= 1 + TOP_SEGMENTS
            assert page.locator("#all-segments").get_attribute("open") is None
        body = page.inner_text("body")
        assert not re.search(r"\d\.\d{7,}", body)  # no raw floats such as 0.0006795960000000001
        page.screenshot(path=str(artifacts_dir / "experiment-report.png"), full_page=True)
    finally:
        page.close()
    bad = cli("report", EXPERIMENT, "--format", "pdf", env=env, cwd=folder)
    assert bad.returncode == 2 and "--format: expected one of md, html, json" in bad.stderr


def test_the_power_sentence_says_what_the_sample_means_before_naming_n_star() -> None:
    plan = {"min_sample": 100, "max_sample": 240, "n_star": 240}
    verdict = {"plan": plan, "n": 180, "design": "sequential", "more_prompts": 40}
    sentence = power_sentence({"n_requests": 200, "verdict": verdict})
    assert sentence.startswith(
        "200 requests, 180 complete prompts; the plan gives no verdict before 100 prompts and ends at 240 "
        "(the planned sample). The intervals stay valid however often the results are checked, and are "
        "narrowest at 240 prompts (confidence sequences tuned for N* = 240); about 40 more prompts"
    )
    fixed = power_sentence(
        {"n_requests": 200, "verdict": {**verdict, "design": "fixed", "more_prompts": None}}
    )
    assert (
        "It decides once, at 240 prompts (fixed horizon, N* = 240). Metrics table: MDE (80 % power)" in fixed
    )
    # the MDE's words name the test the document's MDEs are for (analysis.rule_mde)
    assert sentence.endswith(mde_words(None))  # no mde_test: a document from before, or no plan
    rows = [{"metric": "cost_usd", "mde_test": "always-valid"}]
    sequential = power_sentence({"n_requests": 200, "verdict": verdict, "comparisons": rows})
    assert sequential.endswith(". Metrics table: " + mde_words("always-valid"))
    assert "always-valid intervals (wider than a single look's" in sequential
