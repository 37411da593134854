"""For the tee tests: what a sink delivered, parsed by the capture schema's own parser."""

from __future__ import annotations

from typing import Any

import shadowlab_tee as tee
from shadowlab.capture import Capture, parse_capture_bytes


def delivered(sink: tee.MemorySink, count: int, *, clean: bool = True) -> list[Capture]:
    """Flush, then parse every delivered capture; `clean`: nothing may have failed or been dropped."""
    flushed = sink.flush(timeout=10)
    assert flushed or not clean, sink.stats()
    records = sink.records()
    assert len(records) == count, sink.stats()
    captures = [parse_capture_bytes(value) for _, value in records]
    assert [key.decode() for key, _ in records] == [capture.request_id for capture in captures]
    return captures


def response_of(capture: Capture) -> dict[str, Any]:
    assert capture.response is not None
    return capture.response.model_dump()


def request_of(capture: Capture) -> dict[str, Any]:
    request: dict[str, Any] = capture.to_json_dict()["request"]
    return request
