"""Bad flags and files of the commands that need no stored experiment: retention, simulate, ingest, otlp,
demo, dashboard, prices, analyze --from-csv."""

from __future__ import annotations

from tests.support.bad_inputs.case import (
    CSV,
    SQLITE,
    BadInput,
    ingest_case,
)

FLAGS_AND_FILES = [
    BadInput(
        "retention: age of 99999999999 days",
        ("retention", "--older-than", "99999999999d"),
        2,
        "--older-than: expected an age of at most 100 years",
        SQLITE,
        db="migrated",
    ),
    BadInput(
        "retention: age of 5300 weeks",
        ("retention", "--older-than", "5300w"),
        2,
        "--older-than: expected an age of at most 100 years",
        SQLITE,
        db="migrated",
    ),
    BadInput(
        "retention: age without a unit",
        ("retention", "--older-than", "soon"),
        2,
        "--older-than",
        SQLITE,
        db="migrated",
    ),
    BadInput(
        "simulate: port taken",
        ("simulate", "--port", "{taken_port}"),
        2,
        "--host/--port: cannot listen on 127.0.0.1:",
    ),
    BadInput(
        "simulate: unknown host",
        ("simulate", "--host", "no-such-host.invalid", "--port", "0"),
        2,
        "--host/--port: cannot listen on no-such-host.invalid:0",
    ),
    BadInput(
        "simulate: profile missing",
        ("simulate", "--port", "0", "--profile", "missing.yaml"),
        2,
        "missing.yaml",
    ),
    BadInput(
        "simulate: profile not YAML",
        ("simulate", "--port", "0", "--profile", "p.yaml"),
        2,
        "p.yaml",
        files={"p.yaml": "models: [unclosed\n"},
    ),
    ingest_case(
        "ingest: metrics port out of range",
        ("--metrics-port", "99999"),
        "--metrics-port: expected a port from 1 to 65535, found 99999",
    ),
    ingest_case(
        "ingest: metrics port taken", ("--metrics-port", "{taken_port}"), "cannot listen on 127.0.0.1:"
    ),
    BadInput(
        "ingest: rejected-lines file uncreatable",
        ("ingest", "--source", "file", "c.jsonl"),
        2,
        "INPUT: cannot create the rejected-lines file",
        SQLITE,
        {"c.jsonl": "{}\n", "c.jsonl.rejected.jsonl/.keep": ""},  # a folder where the file should go
        "migrated",
    ),
    BadInput(
        "ingest: file source without INPUT", ("ingest", "--source", "file"), 2, "INPUT", SQLITE, db="migrated"
    ),
    BadInput(
        "ingest: input file missing",
        ("ingest", "--source", "file", "missing.jsonl"),
        2,
        "missing.jsonl",
        SQLITE,
        db="migrated",
    ),
    ingest_case(
        "ingest: redact pattern without =",
        ("--redact-pattern", "nameonly"),
        "--redact-pattern: expected NAME=REGEX",
    ),
    ingest_case(
        "ingest: redact pattern not a regex",
        ("--redact-pattern", "ok=("),
        "--redact-pattern ok: expected a Python regular expression",
    ),
    ingest_case(
        "ingest: redact pattern matching nothing",
        ("--redact-pattern", "empty=a*"),
        "--redact-pattern empty: expected a regex that cannot match the empty string",
    ),
    ingest_case("ingest: tag without =", ("--tag", "team"), "--tag"),
    BadInput(
        "ingest: OTLP file not JSON",
        ("ingest", "--source", "otlp", "spans.json"),
        2,
        "spans.json",
        SQLITE,
        {"spans.json": "{not json"},
        "migrated",
    ),
    BadInput(
        "otlp convert: file missing",
        ("otlp", "convert", "missing.json", "--out", "c.jsonl"),
        2,
        "error: FILE: no such file: missing.json",
    ),
    BadInput(
        "demo: out is a file",
        ("demo", "--small", "--out", "x.txt/demo"),
        2,
        "error: --out: cannot create the folder x.txt/demo (Not a directory)",
        files={"x.txt": ""},
    ),
    BadInput(
        "dashboard: port taken",  # in a process of its own: past the checks, the command becomes Streamlit
        ("dashboard", "--port", "{taken_port}"),
        2,
        "error: --host/--port: cannot listen on 127.0.0.1:",
        SQLITE,
        db="migrated",
        own_process=True,
    ),
    BadInput(
        "dashboard add-user: users file in a missing folder",
        ("dashboard", "add-user", "nowhere/users.yaml", "erin"),
        2,
        "error: USERS_FILE: cannot write nowhere/users.yaml: no such folder: nowhere",
    ),
    BadInput(
        "dashboard add-user: users file a folder",
        ("dashboard", "add-user", ".", "erin"),
        2,
        "error: USERS_FILE: expected a file, found a folder: .",
    ),
    BadInput(
        "otlp convert: out into a missing folder",
        ("otlp", "convert", "spans.json", "--out", "nowhere/c.jsonl"),
        2,
        "error: --out: cannot write nowhere/c.jsonl: no such folder: nowhere",
        files={"spans.json": '{"resourceSpans": []}'},
    ),
    BadInput(
        "otlp convert: file not JSON",
        ("otlp", "convert", "spans.json", "--out", "c.jsonl"),
        2,
        "spans.json",
        files={"spans.json": "{not json"},
    ),
    BadInput(
        "prices import: file missing", ("prices", "import", "p.json"), 2, "error: FILE: no such file: p.json"
    ),
    BadInput(
        "prices import: out into a missing folder",
        ("prices", "import", "p.json", "--out", "nowhere/p.json"),
        2,
        "error: --out: cannot write nowhere/p.json: no such folder: nowhere",
        files={"p.json": "{}"},
    ),
    BadInput(
        "prices import: file not JSON",
        ("prices", "import", "p.json"),
        2,
        "p.json",
        files={"p.json": "{not json"},
    ),
    BadInput("prices show: unknown model", ("prices", "show", "no-such-model"), 2, "no-such-model"),
    BadInput(
        "analyze: unknown adjustment",
        ("analyze", "--from-csv", "d.csv", "--control", "ctrl", "--adjust", "bonferroni"),
        2,
        "--adjust: expected one of holm, bh, none, found 'bonferroni'",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: CSV missing",
        ("analyze", "--from-csv", "missing.csv", "--control", "ctrl"),
        2,
        "error: --from-csv: no such file: missing.csv",
    ),
    BadInput(
        "analyze: CSV a folder",
        ("analyze", "--from-csv", ".", "--control", "ctrl"),
        2,
        "error: --from-csv: expected a file, found a folder: .",
    ),
    BadInput(
        "analyze: plan missing",
        ("analyze", "--from-csv", "d.csv", "--control", "ctrl", "--plan", "missing.yaml"),
        2,
        "error: --plan: no such file: missing.yaml",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: CSV without --control",
        ("analyze", "--from-csv", "d.csv"),
        2,
        "--control",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: unknown metric kind",
        ("analyze", "--from-csv", "d.csv", "--control", "ctrl", "--metric", "judge_score=loud"),
        2,
        "--metric",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: alpha above 1",
        ("analyze", "--from-csv", "d.csv", "--control", "ctrl", "--alpha", "2"),
        2,
        "--alpha",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: control arm not in the CSV",
        ("analyze", "--from-csv", "d.csv", "--control", "nobody"),
        2,
        "nobody",
        files={"d.csv": CSV},
    ),
    BadInput(
        "analyze: plan metric the data lack",
        ("analyze", "--from-csv", "d.csv", "--control", "ctrl", "--plan", "plan.yaml"),
        2,
        "plan plan.yaml: plan metric 'cost'",
        files={"d.csv": CSV, "plan.yaml": "primary_metric: cost\n"},
    ),
    BadInput("analyze: neither experiment nor CSV", ("analyze",), 2, "EXPERIMENT", SQLITE, db="migrated"),
]
