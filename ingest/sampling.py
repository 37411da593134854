"""Which captures to keep: deterministic sampling by hash of `request_id`, and filters on source and model.

The hash makes sampling stable across processes and restarts: a request kept once is kept every time,
so a replayed partition or a second ingest process never stores a different subset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from shadowlab.capture import CaptureView
from shadowlab.errors import ConfigError

SkipReason = Literal["sampled_out", "filtered"]


def sample_point(request_id: str) -> float:
    """A number in [0, 1) fixed by `request_id` (BLAKE2b, so it is the same on every machine)."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Selector:
    """Keep a capture when every given filter matches (any value within one filter) and the sample hits."""

    sample_rate: float = 1.0
    services: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    tags: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ConfigError(f"--sample-rate: expected a number from 0 to 1, found {self.sample_rate}")

    def reason_to_skip(self, capture: CaptureView) -> SkipReason | None:
        """None when the capture is kept, else why it is not."""
        source = capture.source
        if (
            (self.services and source.service not in self.services)
            or (self.routes and source.route not in self.routes)
            or (self.environments and source.environment not in self.environments)
            or (self.models and capture.request.model not in self.models)
            or any(source.tags.get(key) not in values for key, values in self.tags.items())
        ):
            return "filtered"
        if self.sample_rate < 1.0 and sample_point(capture.request_id) >= self.sample_rate:
            return "sampled_out"
        return None


def parse_tag_filters(specs: Iterable[str]) -> dict[str, frozenset[str]]:
    """`KEY=VALUE` options into {key: allowed values}; the same key given twice allows either value."""
    tags: dict[str, set[str]] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag: expected KEY=VALUE, found {spec!r}")
        tags.setdefault(key, set()).add(value)
    return {key: frozenset(values) for key, values in tags.items()}
