"""Bad inputs of the commands on stored experiment `x` (unknown names, flags, output files), click's own
usage errors, and an empty or unreachable Kafka."""

from __future__ import annotations

from tests.support.bad_inputs.case import (
    SPEC,
    SQLITE,
    BadInput,
    on_x,
)

EXPERIMENT_AND_USAGE = [
    on_x("experiment show: unknown name", ("experiment", "show", "nope"), "nope"),
    on_x("experiment create: name taken", ("experiment", "create", "spec.yaml"), "x", {"spec.yaml": SPEC}),
    on_x("replay: unknown experiment", ("replay", "nope"), "nope"),
    on_x("replay: a draft experiment", ("replay", "x"), "(start it first: shadowlab experiment start x)"),
    on_x("experiment budget: zero", ("experiment", "budget", "x", "0"), "budget: expected a positive"),
    on_x("replay: several workers on SQLite", ("replay", "x", "--workers", "2"), "--workers"),
    on_x(
        "replay: analyze-every not a duration",
        ("replay", "--all", "--follow", "--analyze-every", "often"),
        "--analyze-every",
    ),
    on_x("score: unknown experiment", ("score", "nope"), "nope"),
    on_x("score: unknown scorer", ("score", "x", "--scorer", "nope"), "nope"),
    on_x("analyze: unknown experiment", ("analyze", "nope"), "nope"),
    on_x("gate: unknown experiment", ("gate", "nope"), "nope"),
    on_x("gate: unknown verdict in --fail-on", ("gate", "x", "--fail-on", "maybe"), "--fail-on"),
    on_x("report: unknown format", ("report", "x", "--format", "pdf"), "--format"),
    on_x("route: unknown experiment", ("route", "nope"), "nope"),
    on_x(
        "route: unknown dimension",
        ("route", "x", "--by", "colour"),
        "error: --by: expected one of route, service, language, prompt_length, turn or tag:<key>, "
        "found 'colour'",
    ),
    on_x("route: min-n below 2", ("route", "x", "--min-n", "1"), "Invalid value for '--min-n'"),
    on_x(
        "analyze: alpha with a stored experiment (its plan's alpha is used)",
        ("analyze", "x", "--alpha", "0.01"),
        "error: --alpha: expected with --from-csv only (EXPERIMENT is analysed with its stored plan)",
    ),
    on_x("route: tag without a key", ("route", "x", "--by", "tag:"), "error: --by: expected one of"),
    # an output file in a folder that does not exist, or "in" a file: refused before the work, not after it
    on_x(
        "route: export into a missing folder",
        ("route", "x", "--export", "nowhere/routing.yaml"),
        "error: --export: cannot write nowhere/routing.yaml: no such folder: nowhere",
    ),
    on_x(
        "analyze: export CSV into a file",
        ("analyze", "x", "--export-csv", "x.db/x.csv"),
        "error: --export-csv: cannot write x.db/x.csv: not a folder: x.db",
    ),
    on_x(
        "analyze: export plan onto a folder",
        ("analyze", "x", "--export-plan", "."),
        "error: --export-plan: expected a file, found a folder: .",
    ),
    on_x(
        "report: out into a missing folder",
        ("report", "x", "--out", "nowhere/r.md"),
        "error: --out: cannot write nowhere/r.md: no such folder: nowhere",
    ),
    on_x("report: unknown experiment", ("report", "nope"), "nope"),
    on_x("agreement: unknown experiment", ("agreement", "nope", "--scorer", "judge"), "nope"),
    on_x(
        "agreement: a pointwise judge",
        ("agreement", "x", "--scorer", "judge_score"),
        "error: --scorer: expected a pairwise judge of experiment 'x' (none), found 'judge_score'",
    ),
    on_x("forget: empty user hash", ("forget", ""), "USER_HASH"),
    # click's own usage errors: one line naming the command and where its help is, not a usage block
    BadInput(
        "usage: an option's value of the wrong type",
        ("replay", "x", "--concurrency", "many"),
        2,
        "shadowlab replay: Invalid value for '--concurrency'",
    ),
    BadInput("usage: an unknown command", ("replya",), 2, "No such command 'replya'"),
    BadInput("usage: an unknown option", ("analyze", "x", "--colour"), 2, "No such option: --colour"),
    BadInput(
        "usage: a missing argument",
        ("experiment", "show"),
        2,
        "shadowlab experiment show: Missing argument 'name'",
    ),
    BadInput(
        "ingest: empty topic",
        ("ingest", "--source", "kafka", "--topic", "", "--group", "g"),
        2,
        "error: --topic: expected a name, found an empty one",
        SQLITE,
        db="migrated",
    ),
    BadInput(
        "ingest: unreachable Kafka",  # without kafka-python's log of each bootstrap attempt before the line
        ("ingest", "--source", "kafka", "--topic", "t", "--group", "g"),
        3,
        "error: Kafka unreachable at 127.0.0.1:",
        {**SQLITE, "SHADOWLAB_KAFKA_BOOTSTRAP": "127.0.0.1:{free_port}", "SHADOWLAB_CONNECT_TIMEOUT_S": ".5"},
        db="migrated",
        own_process=True,
    ),
    BadInput(
        "topics create: unreachable Kafka",
        ("topics", "create"),
        3,
        "Kafka unreachable",
        {"SHADOWLAB_KAFKA_BOOTSTRAP": "127.0.0.1:{free_port}", "SHADOWLAB_CONNECT_TIMEOUT_S": "0.5"},
        own_process=True,
    ),
]
