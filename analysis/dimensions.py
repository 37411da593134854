"""The segment dimensions `shadowlab route --by` may name, checked before the experiment is read.

`analysis.segments.segment_dimensions` cuts the requests on these, and on `tag:<key>` for each tag with few
values (`language` for a language tag); tests/analysis/test_dimensions.py keeps the two in step. This module
imports nothing heavy: the check runs before the statistics are imported.
"""

from __future__ import annotations

from shadowlab.errors import ConfigError

__all__ = ["DIMENSIONS_HELP", "SEGMENT_DIMENSIONS", "check_dimension"]

SEGMENT_DIMENSIONS = ("route", "service", "language", "prompt_length", "turn")
DIMENSIONS_HELP = f"{', '.join(SEGMENT_DIMENSIONS)} or tag:<key>"


def check_dimension(dimension: str) -> None:
    """A dimension the segments can have (`tag:` with a key); else a `ConfigError` listing them."""
    tagged = dimension.startswith("tag:") and dimension.removeprefix("tag:").strip()
    if dimension not in SEGMENT_DIMENSIONS and not tagged:
        raise ConfigError(f"--by: expected one of {DIMENSIONS_HELP}, found {dimension!r}")
