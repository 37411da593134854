"""`shadowlab.tee`: the tee, re-exported from its own distribution `shadowlab-tee` (import `shadowlab_tee`).

Production apps install only `shadowlab-tee` and import `shadowlab_tee`; this thin module keeps
`from shadowlab import tee` working where the whole platform is installed (it depends on the tee).
The public names only: the tee's internals live in `shadowlab_tee.*`. See docs/tee.md.
"""

from shadowlab_tee import (
    DEFAULT_TOPIC,
    JsonlSink,
    KafkaSink,
    MemorySink,
    Sink,
    Source,
    TeeConfigError,
    TeedClient,
    TeeStats,
    TeeUnsupportedError,
    hash_user,
    wrap,
)

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
