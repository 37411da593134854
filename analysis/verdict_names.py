"""The decision rule's verdicts by name. Light (no statistics), so `shadowlab gate --fail-on` is checked
before the command imports the statistics: a typo there is reported at once, not after the reads."""

from __future__ import annotations

from typing import Literal

VerdictName = Literal["ship", "dont_ship", "keep_running", "inconclusive", "invalid"]
VERDICTS: tuple[VerdictName, ...] = ("ship", "dont_ship", "keep_running", "inconclusive", "invalid")
