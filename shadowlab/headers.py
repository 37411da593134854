"""Headers the replayer adds to every replay call (never captured or stored)."""

from __future__ import annotations

__all__ = ["CAPTURE_ID_HEADER"]

# The replayed capture's `request_id`: lets the simulator draw each capture's answer afresh, as a model
# sampling at temperature > 0 would, even when many captures share one body. Real APIs ignore it.
CAPTURE_ID_HEADER = "x-shadowlab-capture-id"
