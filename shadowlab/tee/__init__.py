"""The tee: mirror production LLM calls into Kafka (or a JSONL file) without slowing or breaking them.

Imports only the standard library (kafka-python lazily, when a KafkaSink first connects); the wrapped
SDK is recognised by its shape and never imported. See docs/tee.md.
"""

from shadowlab.tee.calls import TeeUnsupportedError
from shadowlab.tee.kafka_sink import DEFAULT_TOPIC, KafkaSink
from shadowlab.tee.local_sinks import JsonlSink, MemorySink
from shadowlab.tee.record import Source, TeeConfigError, hash_user
from shadowlab.tee.sink import Sink, TeeStats
from shadowlab.tee.wrapper import TeedClient, wrap

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
