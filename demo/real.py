"""`shadowlab demo --real`: production calls mirrored by the tee into the real Kafka broker and
consumed by `shadowlab ingest` into the real Postgres; the rest runs as in the embedded demo."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from demo.run import DemoError, DemoOptions, Stages
from demo.traffic import TrafficSpec, generate
from shadowlab import tee
from shadowlab.broker import capture_topics, ensure_topics
from shadowlab.config import DEFAULT_DATABASE_URL, Settings
from shadowlab.db import engine_from, parse_database_url, shown_url

DEMO_DATABASE_SUFFIX = "_demo"


def real_options(options: DemoOptions, settings: Settings) -> DemoOptions:
    """Point the demo at a fresh `<db>_demo` database on the configured Postgres and at the broker."""
    if settings.database_url == DEFAULT_DATABASE_URL or not settings.database_url.startswith("postgresql"):
        raise DemoError(
            "demo --real: SHADOWLAB_DATABASE_URL must point at Postgres (`make services` prints the URL), "
            f"found {shown_url(parse_database_url(settings.database_url))}"
        )
    url = parse_database_url(settings.database_url)
    demo_db = f"{url.database}{DEMO_DATABASE_SUFFIX}"
    admin = engine_from(settings, migrated=False)  # the server's own database: the demo's is made below
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{demo_db}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{demo_db}"'))
    admin.dispose()
    return replace(
        options,
        real=True,
        database_url=url.set(database=demo_db).render_as_string(hide_password=False),
        kafka_bootstrap=settings.kafka_bootstrap,
    )


def _production_clients(base_url: str) -> tuple[Any, Any]:
    try:
        import anthropic
        import openai
    except ImportError as exc:  # openai ships with the dev extras
        needed = f"demo --real: the production app needs the {exc.name} package (`make setup`)"
        raise DemoError(needed) from None
    return (
        anthropic.Anthropic(base_url=base_url, api_key="sk-ant-demo-not-a-real-key", max_retries=0),
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-demo-not-a-real-key", max_retries=0),
    )


def _call(client: Any, capture: dict[str, Any]) -> None:
    """One production call through the wrapped client, with the capture's source and request id."""
    keys = {"tee_source": capture["source"], "tee_request_id": capture["request_id"]}
    if capture["api"] == "anthropic.messages":
        client[0].messages.create(**capture["request"], **keys)
    else:
        client[1].chat.completions.create(**capture["request"], **keys)


def tee_into_kafka(stages: Stages, options: DemoOptions) -> None:
    """The production app: calls the simulator through tee-wrapped clients; malformed bytes go in raw."""
    from kafka import KafkaProducer

    assert options.kafka_bootstrap is not None
    topic = f"demo.captures.{uuid.uuid4().hex[:8]}"
    ensure_topics(options.kafka_bootstrap, capture_topics(topic, partitions=4))
    spec = TrafficSpec(n_captures=options.n_captures, seed=options.seed)
    messages = list(generate(spec))
    good = [json.loads(m) for m in messages if m.startswith(b'{"schema_version":1,')]
    bad = [m for m in messages if not m.startswith(b'{"schema_version":1,')]
    sink = tee.KafkaSink(options.kafka_bootstrap, topic, queue_size=len(good) + 100)
    anthropic_client, openai_client = _production_clients(stages.env["SHADOWLAB_ANTHROPIC_BASE_URL"])
    clients = (
        tee.wrap(anthropic_client, sink, tee.Source(service="demo")),
        tee.wrap(openai_client, sink, tee.Source(service="demo")),
    )
    stages.echo(f"   production app: {len(good)} calls through tee-wrapped SDK clients → Kafka topic {topic}")
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda capture: _call(clients, capture), good))
    delivered = sink.flush(timeout=60)
    stats = sink.stats()
    stages.echo(f"   tee: sent {stats.sent}, dropped {stats.dropped}, failed {stats.failed}")
    if not delivered:
        raise DemoError(f"demo --real: the tee could not deliver every capture to {topic} ({stats})")
    producer = KafkaProducer(bootstrap_servers=options.kafka_bootstrap, acks="all")
    for raw in bad:
        producer.send(topic, raw)
    producer.flush(timeout=30)
    producer.close()
    sink.close()
    stages.echo(f"   and {len(bad)} malformed messages produced raw, for the dead-letter topic {topic}.dlq")
    stages.run(
        "ingest", "--source", "kafka", "--topic", topic, "--group", f"{topic}.ingest", "--idle-exit", "5"
    )
