"""The hostile-input corpus of issue 20: bad flags, settings, files and database states for every command.

Each case is data: the command line, the environment (over a clean SHADOWLAB_* one), the files put in the
working folder first, and what must come out: the exit code (2 a bad input, 3 a service out of reach) and
a piece of the one `error:` line (the field named, and what was expected). `tests/shadowlab/
test_bad_inputs.py` runs every case through the CLI's entry point in process.

Placeholders in `argv` and `env`: `{free_port}` a port nothing listens on, `{taken_port}` a port a socket
holds while the case runs. `db` is the database the case starts with: none, a migrated SQLite file
(`sqlite:///x.db`), or one holding experiment `x` (spec `SPEC`, created by the test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Database = Literal["none", "migrated", "experiment"]


@dataclass(frozen=True)
class BadInput:
    name: str
    argv: tuple[str, ...]
    code: int
    needle: str  # in the `error:` line: the field, and what was expected
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    db: Database = "none"
    # In a process of its own: kafka-python leaves the sockets of a bootstrap that failed open, and this
    # process would warn about them later (the command exits right after, as it should).
    own_process: bool = False


SPEC = """\
name: x
control: {name: control, provider: anthropic, model: claude-haiku-4-5}
candidates:
  - {name: mini, provider: openai, model: gpt-4o-mini}
allowed_providers: [anthropic, openai]
budget: {usd: 1}
plan: {primary_metric: judge_score}
scoring: {judges: [{name: judge_score, kind: pointwise, model: claude-haiku-4-5}]}
"""
CSV = "request_id,arm,judge_score\n" + "".join(
    f"r{i},ctrl,{5 + i % 3}\nr{i},cand,{6 + i % 2}\n" for i in range(8)
)
SQLITE = {"SHADOWLAB_DATABASE_URL": "sqlite:///x.db"}
UNREACHABLE_PG = "postgresql+psycopg://shadowlab:s3cret-pw@127.0.0.1:{free_port}/shadowlab"


def _spec(name: str, spec: str, needle: str) -> BadInput:
    return BadInput(
        f"spec: {name}",
        ("experiment", "create", "spec.yaml"),
        2,
        needle,
        SQLITE,
        {"spec.yaml": spec},
        "migrated",
    )


def _env(name: str, variable: str, value: str, needle: str, code: int = 2) -> BadInput:
    return BadInput(f"env: {name}", ("doctor",), code, needle, {variable: value})


def _ingest(name: str, flags: tuple[str, ...], needle: str) -> BadInput:
    argv = ("ingest", "--source", "file", "c.jsonl", *flags)
    return BadInput(name, argv, 2, needle, SQLITE, {"c.jsonl": "{}\n"}, "migrated")


def _on_x(name: str, argv: tuple[str, ...], needle: str, files: dict[str, str] | None = None) -> BadInput:
    return BadInput(name, argv, 2, needle, SQLITE, files or {}, "experiment")


SETTINGS = [
    _env("log level LOUD", "SHADOWLAB_LOG_LEVEL", "LOUD", "SHADOWLAB_LOG_LEVEL: expected one of DEBUG, INFO"),
    _env("log format xml", "SHADOWLAB_LOG_FORMAT", "xml", "SHADOWLAB_LOG_FORMAT"),
    _env(
        "database URL without a scheme",
        "SHADOWLAB_DATABASE_URL",
        "postgres//no-scheme",
        "SHADOWLAB_DATABASE_URL",
    ),
    _env("database URL of MySQL", "SHADOWLAB_DATABASE_URL", "mysql://u:p@localhost/db", "expected driver"),
    _env(
        "database URL without a database",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:p@localhost",
        "expected a database name",
    ),
    _env(
        "database URL with a port that is not a number",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@localhost:notaport/db",
        "SHADOWLAB_DATABASE_URL: expected a URL like postgresql+psycopg://",
    ),
    _env(
        "database URL with a port out of range",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@localhost:99999/db",
        "SHADOWLAB_DATABASE_URL: expected a port from 1 to 65535, found 99999",
    ),
    _env(
        "database URL with a host of one bracket",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@[bad:5432/db",
        "error: SHADOWLAB_DATABASE_URL: expected a host name or an IP address (IPv6 in [brackets]), "
        "found '[bad'",
    ),
    _env(
        "database URL with a space in its second host",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@db1,db 2/db",
        "SHADOWLAB_DATABASE_URL: expected a host name or an IP address (IPv6 in [brackets]), found 'db 2'",
    ),
    _env("database URL of a folder", "SHADOWLAB_DATABASE_URL", "sqlite:///.", "expected a file, found the"),
    BadInput(
        "env: db upgrade into a folder that does not exist",
        ("db", "upgrade"),
        2,
        "sqlite:///nowhere/x.db: no such folder",
        {"SHADOWLAB_DATABASE_URL": "sqlite:///nowhere/x.db"},
    ),
    _env(
        "bootstrap without a port",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "localhost",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    _env(
        "bootstrap port not a number",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "host:notaport",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    _env(
        "bootstrap port out of range",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "host:99999",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    _env(
        "bootstrap without a host",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        ":9092",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    _env(
        "capture topic with a space",
        "SHADOWLAB_CAPTURE_TOPIC",
        "llm captures",
        "error: SHADOWLAB_CAPTURE_TOPIC: expected a Kafka topic name (1-249 letters, digits, '.', '_', '-'), "
        "found 'llm captures'",
    ),
    _env("capture topic empty", "SHADOWLAB_CAPTURE_TOPIC", "", "SHADOWLAB_CAPTURE_TOPIC: expected a Kafka"),
    _env(
        "provider base URL without a scheme",
        "SHADOWLAB_OPENAI_BASE_URL",
        "localhost:8000/v1",
        "error: SHADOWLAB_OPENAI_BASE_URL: expected an http:// or https:// URL, found 'localhost:8000/v1'",
    ),
    _env("connect timeout a word", "SHADOWLAB_CONNECT_TIMEOUT_S", "soon", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    _env("connect timeout zero", "SHADOWLAB_CONNECT_TIMEOUT_S", "0", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    _env("connect timeout negative", "SHADOWLAB_CONNECT_TIMEOUT_S", "-1", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    _env("ingest max bytes zero", "SHADOWLAB_INGEST_MAX_BYTES", "0", "SHADOWLAB_INGEST_MAX_BYTES"),
    _env("ingest max bytes a word", "SHADOWLAB_INGEST_MAX_BYTES", "big", "SHADOWLAB_INGEST_MAX_BYTES"),
    _env("limits heartbeat a word", "SHADOWLAB_LIMITS_HEARTBEAT_S", "often", "SHADOWLAB_LIMITS_HEARTBEAT_S"),
    _env(
        "limits timeout below the heartbeat",
        "SHADOWLAB_LIMITS_TIMEOUT_S",
        "0.001",
        "SHADOWLAB_LIMITS_TIMEOUT_S",
    ),
    _env(
        "session minutes a word",
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES",
        "forever",
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES",
    ),
    _env(
        "unreachable Postgres",
        "SHADOWLAB_DATABASE_URL",
        UNREACHABLE_PG,
        "database unreachable",
        code=3,
    ),
    BadInput(
        "env: unreachable Kafka",
        ("doctor",),
        3,
        "Kafka unreachable at 127.0.0.1:",
        {
            **SQLITE,
            "SHADOWLAB_KAFKA_BOOTSTRAP": "127.0.0.1:{free_port}",
            "SHADOWLAB_CONNECT_TIMEOUT_S": "0.5",
        },
        db="migrated",
        own_process=True,
    ),
    BadInput(
        "env: prices file not JSON",
        ("doctor",),
        2,
        "SHADOWLAB_PRICES_FILE prices.json: expected JSON",
        {**SQLITE, "SHADOWLAB_PRICES_FILE": "prices.json"},
        {"prices.json": "{not json"},
        "migrated",
    ),
    BadInput(
        "env: prices file missing",
        ("doctor",),
        2,
        "SHADOWLAB_PRICES_FILE",
        {**SQLITE, "SHADOWLAB_PRICES_FILE": "missing.json"},
        db="migrated",
    ),
]

DATABASE_STATES = [
    BadInput(
        "db: downgrade to an unknown revision",
        ("db", "downgrade", "0001_initial"),
        2,
        "error: revision '0001_initial': Can't locate revision identified by '0001_initial'; "
        "expected head, base or one of 0001_baseline … ",
        SQLITE,
        db="migrated",
    ),
    BadInput(
        "db: upgrade to an unknown revision",
        ("db", "upgrade", "--revision", "nope"),
        2,
        "error: revision 'nope': Can't locate revision",
        SQLITE,
        db="migrated",
    ),
    BadInput("db: missing SQLite file", ("experiment", "list"), 2, "no such file", {}),
    BadInput("db: empty SQLite file", ("experiment", "list"), 2, "not migrated", SQLITE, {"x.db": ""}),
    BadInput(
        "db: replay on an unmigrated database", ("replay", "x"), 2, "not migrated", SQLITE, {"x.db": ""}
    ),
    BadInput(
        "db: ingest on an unmigrated database",
        ("ingest", "--source", "file", "c.jsonl"),
        2,
        "not migrated",
        SQLITE,
        {"x.db": "", "c.jsonl": "{}\n"},
    ),
]

SPECS = [
    _spec("missing file", "", "spec.yaml"),
    _spec(
        "YAML syntax", "name: x\ncontrol: {name: control\n", "spec.yaml: not valid YAML (expected ',' or '}'"
    ),
    _spec("candidate without a model", SPEC.replace(", model: gpt-4o-mini", ""), "model"),
    _spec("no allowed provider", SPEC.replace("[anthropic, openai]", "[]"), "allowed_providers"),
    _spec("arm with an empty provider", SPEC.replace("provider: openai", "provider: ''"), "provider"),
    _spec("not a mapping", "- a\n- b\n", "spec.yaml"),
    _spec(
        "missing control arm",
        SPEC.replace("control: {name: control, provider: anthropic, model: claude-haiku-4-5}\n", ""),
        "control",
    ),
    _spec("unknown top-level key", SPEC + "colour: blue\n", "colour"),
    _spec(
        "limits for a model no arm uses",
        SPEC + "limits:\n  - {provider: anthropic, model: sim-sonet, rpm: 10}\n",
        "limits[0]: expected the provider/model of an arm or a judge",
    ),
    _spec(
        "limits with an unknown field",
        SPEC + "limits:\n  - {provider: anthropic, model: claude-haiku-4-5, rpn: 10}\n",
        "rpn",
    ),
    # what only shows once replays start or the analysis runs, refused at create instead
    _spec(
        "unknown provider",
        SPEC.replace("provider: openai", "provider: opnai"),
        "error: spec.yaml: candidates[0].provider: expected a registered provider (anthropic, openai, "
        "openai_responses), found 'opnai'",
    ),
    _spec(
        "unknown provider in the allowlist",
        SPEC.replace("[anthropic, openai]", "[anthropic, openai, vertex]"),
        "error: spec.yaml: allowed_providers[2]: expected a registered provider",
    ),
    _spec(
        "arm outside the allowlist",
        SPEC.replace("[anthropic, openai]", "[openai]"),
        "error: spec.yaml: control.provider: expected a provider in allowed_providers (openai), "
        "found 'anthropic': it may not receive prompts",
    ),
    _spec(
        "judge outside the allowlist",
        SPEC.replace("kind: pointwise,", "kind: pointwise, provider: openai_responses,"),
        "error: spec.yaml: scoring.judges[0].provider: expected a provider in allowed_providers",
    ),
    _spec(
        "unknown primary metric",
        SPEC.replace("primary_metric: judge_score", "primary_metric: judge_scor"),
        "error: spec.yaml: plan.primary_metric: expected a metric this experiment will have (error, ttft_ms, "
        "latency_ms, cost_usd, judge_score; also ttft,",
    ),
    _spec(
        "primary metric of no scorer",
        SPEC.replace(
            "scoring: {judges: [{name: judge_score, kind: pointwise, model: claude-haiku-4-5}]}\n", ""
        ),
        "a scorer once `scoring` names it), found 'judge_score'",
    ),
    _spec(
        "unknown guardrail metric",
        SPEC.replace(
            "judge_score}",
            "judge_score, guardrails: [{metric: ttft_p95, margin: 0.1}, {metric: tfft, margin: 0.1}]}",
        ),
        "error: spec.yaml: plan.guardrails[1].metric: expected a metric this experiment will have",
    ),
    _spec(
        "metric direction of an alias (looked up by column name, it would be ignored)",
        SPEC.replace("judge_score}", "judge_score, metric_directions: {error_rate: lower_is_better}}"),
        "error: spec.yaml: plan.metric_directions: expected a metric column as key (error, ttft_ms, "
        "latency_ms, cost_usd, judge_score), found 'error_rate'",
    ),
    _spec(
        "no-harm margin of an unknown metric",
        SPEC.replace("judge_score}", "judge_score, no_harm_margins: {latency: 0.2, ttft: 0.1}}"),
        "error: spec.yaml: plan.no_harm_margins: expected a metric column as key",
    ),
    _spec(
        "scorer of an unknown kind",
        SPEC.replace("kind: pointwise", "kind: pointy"),
        "error: spec.yaml: scoring.judges[0].kind: Input should be 'pointwise' or 'pairwise'",
    ),
    _spec(
        "a candidate's model has no price",
        SPEC.replace("model: gpt-4o-mini", "model: gpt-9-imaginary"),
        "error: spec.yaml: candidates[0].model (arm 'mini'): price of model 'gpt-9-imaginary': expected an "
        "entry in prices.json or SHADOWLAB_PRICES_FILE; add it to a LiteLLM-format price file",
    ),
    _spec(
        "a judge's model has no price",
        SPEC.replace("kind: pointwise, model: claude-haiku-4-5", "kind: pointwise, model: claude-imaginary"),
        "error: spec.yaml: scoring.judges[0].model (judge 'judge_score'): price of model 'claude-imaginary'",
    ),
    _spec("budget negative", SPEC.replace("usd: 1", "usd: -1"), "budget"),
    _spec("budget a word", SPEC.replace("usd: 1", "usd: lots"), "budget"),
    _spec("duplicate arm names", SPEC.replace("name: mini", "name: control"), "control"),
    _spec(
        "no candidates",
        SPEC.replace("  - {name: mini, provider: openai, model: gpt-4o-mini}\n", "").replace(
            "candidates:\n", "candidates: []\n"
        ),
        "candidates",
    ),
]
SPECS[0] = BadInput(
    "spec: missing file", ("experiment", "create", "spec.yaml"), 2, "spec.yaml", SQLITE, {}, "migrated"
)

COMMANDS = [
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
    _ingest(
        "ingest: metrics port out of range",
        ("--metrics-port", "99999"),
        "--metrics-port: expected a port from 1 to 65535, found 99999",
    ),
    _ingest("ingest: metrics port taken", ("--metrics-port", "{taken_port}"), "cannot listen on 127.0.0.1:"),
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
    _ingest(
        "ingest: redact pattern without =",
        ("--redact-pattern", "nameonly"),
        "--redact-pattern: expected NAME=REGEX",
    ),
    _ingest(
        "ingest: redact pattern not a regex",
        ("--redact-pattern", "ok=("),
        "--redact-pattern ok: expected a Python regular expression",
    ),
    _ingest(
        "ingest: redact pattern matching nothing",
        ("--redact-pattern", "empty=a*"),
        "--redact-pattern empty: expected a regex that cannot match the empty string",
    ),
    _ingest("ingest: tag without =", ("--tag", "team"), "--tag"),
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
    _on_x("experiment show: unknown name", ("experiment", "show", "nope"), "nope"),
    _on_x("experiment create: name taken", ("experiment", "create", "spec.yaml"), "x", {"spec.yaml": SPEC}),
    _on_x("replay: unknown experiment", ("replay", "nope"), "nope"),
    _on_x("replay: a draft experiment", ("replay", "x"), "(start it first: shadowlab experiment start x)"),
    _on_x("experiment budget: zero", ("experiment", "budget", "x", "0"), "budget: expected a positive"),
    _on_x("replay: several workers on SQLite", ("replay", "x", "--workers", "2"), "--workers"),
    _on_x(
        "replay: analyze-every not a duration",
        ("replay", "--all", "--follow", "--analyze-every", "often"),
        "--analyze-every",
    ),
    _on_x("score: unknown experiment", ("score", "nope"), "nope"),
    _on_x("score: unknown scorer", ("score", "x", "--scorer", "nope"), "nope"),
    _on_x("analyze: unknown experiment", ("analyze", "nope"), "nope"),
    _on_x("gate: unknown experiment", ("gate", "nope"), "nope"),
    _on_x("gate: unknown verdict in --fail-on", ("gate", "x", "--fail-on", "maybe"), "--fail-on"),
    _on_x("report: unknown format", ("report", "x", "--format", "pdf"), "--format"),
    _on_x("route: unknown experiment", ("route", "nope"), "nope"),
    _on_x(
        "route: unknown dimension",
        ("route", "x", "--by", "colour"),
        "error: --by: expected one of route, service, language, prompt_length, turn or tag:<key>, "
        "found 'colour'",
    ),
    _on_x("route: min-n below 2", ("route", "x", "--min-n", "1"), "Invalid value for '--min-n'"),
    _on_x(
        "analyze: alpha with a stored experiment (its plan's alpha is used)",
        ("analyze", "x", "--alpha", "0.01"),
        "error: --alpha: expected with --from-csv only (EXPERIMENT is analysed with its stored plan)",
    ),
    _on_x("route: tag without a key", ("route", "x", "--by", "tag:"), "error: --by: expected one of"),
    # an output file in a folder that does not exist, or "in" a file: refused before the work, not after it
    _on_x(
        "route: export into a missing folder",
        ("route", "x", "--export", "nowhere/routing.yaml"),
        "error: --export: cannot write nowhere/routing.yaml: no such folder: nowhere",
    ),
    _on_x(
        "analyze: export CSV into a file",
        ("analyze", "x", "--export-csv", "x.db/x.csv"),
        "error: --export-csv: cannot write x.db/x.csv: not a folder: x.db",
    ),
    _on_x(
        "analyze: export plan onto a folder",
        ("analyze", "x", "--export-plan", "."),
        "error: --export-plan: expected a file, found a folder: .",
    ),
    _on_x(
        "report: out into a missing folder",
        ("report", "x", "--out", "nowhere/r.md"),
        "error: --out: cannot write nowhere/r.md: no such folder: nowhere",
    ),
    _on_x("report: unknown experiment", ("report", "nope"), "nope"),
    _on_x("agreement: unknown experiment", ("agreement", "nope", "--scorer", "judge"), "nope"),
    _on_x(
        "agreement: a pointwise judge",
        ("agreement", "x", "--scorer", "judge_score"),
        "error: --scorer: expected a pairwise judge of experiment 'x' (none), found 'judge_score'",
    ),
    _on_x("forget: empty user hash", ("forget", ""), "USER_HASH"),
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

BAD_INPUTS: list[BadInput] = [*SETTINGS, *DATABASE_STATES, *SPECS, *COMMANDS]
