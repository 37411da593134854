"""`shadowlab analyze EXPERIMENT` and `shadowlab gate EXPERIMENT`: the database side of the commands.

Database modules are imported inside the functions so `analyze --from-csv` does not pay for them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from analysis.decision import VERDICTS
from analysis.plan import PlanError

EXIT_INVALID_INPUT = 2
EXIT_GATE_BLOCKED = 1


def _run(settings: Any, experiment: str) -> Any:
    """Analyse the experiment in one transaction (the snapshot row commits with it)."""
    from analysis.experiment_analysis import analyze_experiment
    from shadowlab.db import check_connection, create_engine, session_factory, session_scope

    engine = create_engine(settings.database_url, connect_timeout_s=settings.connect_timeout_s)
    try:
        check_connection(engine)
        with session_scope(session_factory(engine)) as session:
            return analyze_experiment(session, experiment)
    finally:
        engine.dispose()


def analyze_stored(
    settings: Any, experiment: str, json_output: bool, export_csv: Path | None, export_plan: Path | None
) -> int:
    """Print the analyze document of a stored experiment; optionally export its CSV and plan."""
    from analysis.command import verdict_text
    from analysis.experiment_analysis import export_plan as plan_for_csv
    from analysis.load import ExperimentLoadError, table_to_csv

    try:
        report = _run(settings, experiment)
    except (ExperimentLoadError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if export_csv is not None:
        export_csv.write_text(table_to_csv(report.data.table), encoding="utf-8")
    if export_plan is not None:
        export_plan.write_text(json.dumps(plan_for_csv(report.data), indent=2), encoding="utf-8")
    if json_output:
        print(json.dumps(report.document, indent=2, allow_nan=False))
    else:
        doc = report.document
        print(f"experiment {experiment}: {doc['n_requests']} requests, arms {', '.join(doc['arms'])}")
        print(verdict_text(doc))
        print(f"(snapshot {report.snapshot_id} stored; --json for every comparison)")
    return 0


def parse_fail_on(text: str) -> tuple[str, ...]:
    """`dont_ship,inconclusive` → the verdict names; unknown names are an error."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in VERDICTS]
    if unknown or not names:
        raise ValueError(
            f"--fail-on: expected verdicts among {', '.join(VERDICTS)}, found {', '.join(unknown) or 'none'}"
        )
    return names


def gate(settings: Any, experiment: str, fail_on: str, json_output: bool) -> int:
    """Exit 0 when the verdict may deploy, 1 (with reasons) when it is one of `fail_on`, 2 on bad input."""
    from analysis.load import ExperimentLoadError

    try:
        blocking = parse_fail_on(fail_on)
        report = _run(settings, experiment)
    except (ValueError, ExperimentLoadError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if report.verdict is None:
        print(
            f"error: experiment {experiment!r} has no pre-registered plan; the gate needs one",
            file=sys.stderr,
        )
        return EXIT_INVALID_INPUT
    verdict = report.document["verdict"]
    blocked = report.verdict in blocking
    if json_output:
        print(json.dumps({"gate": "blocked" if blocked else "passed", **verdict}, indent=2, allow_nan=False))
    else:
        status = "BLOCKED" if blocked else "passed"
        print(f"gate {status}: experiment {experiment} verdict {report.verdict}")
        for reason in report.reasons:
            print(f"  - {reason}")
    if blocked:
        print(f"gate blocked: verdict {report.verdict} is in --fail-on {','.join(blocking)}", file=sys.stderr)
        return EXIT_GATE_BLOCKED
    return 0
