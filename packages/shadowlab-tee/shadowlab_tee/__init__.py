"""The tee: mirror production LLM calls into Kafka (or a JSONL file) without slowing or breaking them.

Imports only the standard library (kafka-python lazily, when a KafkaSink first connects); the wrapped
SDK is recognised by its shape and never imported. Production apps install this distribution alone
(`pip install shadowlab-tee`: the standard library and kafka-python); the platform (`shadowlab`) depends
on it and re-exports it as `shadowlab.tee`. See docs/tee.md.
"""

from shadowlab_tee.calls import TeeUnsupportedError
from shadowlab_tee.kafka_sink import DEFAULT_TOPIC, KafkaSink
from shadowlab_tee.local_sinks import JsonlSink, MemorySink
from shadowlab_tee.record import Source, TeeConfigError, hash_user
from shadowlab_tee.sink import Sink, TeeStats
from shadowlab_tee.wrapper import TeedClient, wrap

__all__ = [
    "DEFAULT_TOPIC",
    "JsonlSink",
    "KafkaSink",
    "MemorySink",
    "Sink",
    "Source",
    "TeeConfigError",
    "TeeStats",
    "TeeUnsupportedError",
    "TeedClient",
    "hash_user",
    "wrap",
]
