"""Numbers as JSON can hold them."""

from __future__ import annotations

import math


def json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None
