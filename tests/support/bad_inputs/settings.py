"""Bad settings (the environment) and database states: missing, empty or unmigrated databases, unknown
revisions."""

from __future__ import annotations

from tests.support.bad_inputs.case import (
    SQLITE,
    UNREACHABLE_PG,
    BadInput,
    env_case,
)

SETTINGS = [
    env_case(
        "log level LOUD", "SHADOWLAB_LOG_LEVEL", "LOUD", "SHADOWLAB_LOG_LEVEL: expected one of DEBUG, INFO"
    ),
    env_case("log format xml", "SHADOWLAB_LOG_FORMAT", "xml", "SHADOWLAB_LOG_FORMAT"),
    env_case(
        "database URL without a scheme",
        "SHADOWLAB_DATABASE_URL",
        "postgres//no-scheme",
        "SHADOWLAB_DATABASE_URL",
    ),
    env_case(
        "database URL of MySQL", "SHADOWLAB_DATABASE_URL", "mysql://u:p@localhost/db", "expected driver"
    ),
    env_case(
        "database URL without a database",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:p@localhost",
        "expected a database name",
    ),
    env_case(
        "database URL with a port that is not a number",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@localhost:notaport/db",
        "SHADOWLAB_DATABASE_URL: expected a URL like postgresql+psycopg://",
    ),
    env_case(
        "database URL with a port out of range",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@localhost:99999/db",
        "SHADOWLAB_DATABASE_URL: expected a port from 1 to 65535, found 99999",
    ),
    env_case(
        "database URL with a host of one bracket",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@[bad:5432/db",
        "error: SHADOWLAB_DATABASE_URL: expected a host name or an IP address (IPv6 in [brackets]), "
        "found '[bad'",
    ),
    env_case(
        "database URL with a space in its second host",
        "SHADOWLAB_DATABASE_URL",
        "postgresql+psycopg://u:s3cret-pw@db1,db 2/db",
        "SHADOWLAB_DATABASE_URL: expected a host name or an IP address (IPv6 in [brackets]), found 'db 2'",
    ),
    env_case(
        "database URL of a folder", "SHADOWLAB_DATABASE_URL", "sqlite:///.", "expected a file, found the"
    ),
    BadInput(
        "env: db upgrade into a folder that does not exist",
        ("db", "upgrade"),
        2,
        "sqlite:///nowhere/x.db: no such folder",
        {"SHADOWLAB_DATABASE_URL": "sqlite:///nowhere/x.db"},
    ),
    env_case(
        "bootstrap without a port",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "localhost",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    env_case(
        "bootstrap port not a number",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "host:notaport",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    env_case(
        "bootstrap port out of range",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        "host:99999",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    env_case(
        "bootstrap without a host",
        "SHADOWLAB_KAFKA_BOOTSTRAP",
        ":9092",
        "SHADOWLAB_KAFKA_BOOTSTRAP: expected host:port",
    ),
    env_case(
        "capture topic with a space",
        "SHADOWLAB_CAPTURE_TOPIC",
        "llm captures",
        "error: SHADOWLAB_CAPTURE_TOPIC: expected a Kafka topic name (1-249 letters, digits, '.', '_', '-'), "
        "found 'llm captures'",
    ),
    env_case(
        "capture topic empty", "SHADOWLAB_CAPTURE_TOPIC", "", "SHADOWLAB_CAPTURE_TOPIC: expected a Kafka"
    ),
    env_case(
        "provider base URL without a scheme",
        "SHADOWLAB_OPENAI_BASE_URL",
        "localhost:8000/v1",
        "error: SHADOWLAB_OPENAI_BASE_URL: expected an http:// or https:// URL, found 'localhost:8000/v1'",
    ),
    env_case("connect timeout a word", "SHADOWLAB_CONNECT_TIMEOUT_S", "soon", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    env_case("connect timeout zero", "SHADOWLAB_CONNECT_TIMEOUT_S", "0", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    env_case("connect timeout negative", "SHADOWLAB_CONNECT_TIMEOUT_S", "-1", "SHADOWLAB_CONNECT_TIMEOUT_S"),
    env_case("ingest max bytes zero", "SHADOWLAB_INGEST_MAX_BYTES", "0", "SHADOWLAB_INGEST_MAX_BYTES"),
    env_case("ingest max bytes a word", "SHADOWLAB_INGEST_MAX_BYTES", "big", "SHADOWLAB_INGEST_MAX_BYTES"),
    env_case(
        "limits heartbeat a word", "SHADOWLAB_LIMITS_HEARTBEAT_S", "often", "SHADOWLAB_LIMITS_HEARTBEAT_S"
    ),
    env_case(
        "limits timeout below the heartbeat",
        "SHADOWLAB_LIMITS_TIMEOUT_S",
        "0.001",
        "SHADOWLAB_LIMITS_TIMEOUT_S",
    ),
    env_case(
        "session minutes a word",
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES",
        "forever",
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES",
    ),
    env_case(
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
