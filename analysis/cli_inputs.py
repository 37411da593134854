"""What the analysis commands check of their options before any work: which options go together, the files
they name, and the segment dimension `route --by` may name.

`analysis.segments.segment_dimensions` cuts the requests on `SEGMENT_DIMENSIONS`, and on `tag:<key>` for each
tag with few values (`language` for a language tag); tests/analysis/test_cli_inputs.py keeps the two in step.
This module imports nothing heavy: it runs before the statistics are imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shadowlab.errors import ConfigError
from shadowlab.files import input_file, output_file

__all__ = ["DIMENSIONS_HELP", "SEGMENT_DIMENSIONS", "AnalyzeInputs", "check_dimension"]

SEGMENT_DIMENSIONS = ("route", "service", "language", "prompt_length", "turn")
DIMENSIONS_HELP = f"{', '.join(SEGMENT_DIMENSIONS)} or tag:<key>"
DEFAULT_ALPHA = 0.05
DEFAULT_ADJUST = "holm"


def check_dimension(dimension: str) -> None:
    """A dimension the segments can have (`tag:` with a key); else a `ConfigError` listing them."""
    tagged = dimension.startswith("tag:") and dimension.removeprefix("tag:").strip()
    if dimension not in SEGMENT_DIMENSIONS and not tagged:
        raise ConfigError(f"--by: expected one of {DIMENSIONS_HELP}, found {dimension!r}")


@dataclass(frozen=True)
class AnalyzeInputs:
    """`shadowlab analyze`'s options: a stored EXPERIMENT or a long CSV (--from-csv), each with its own."""

    experiment: str | None
    from_csv: Path | None
    control: str | None
    metric: tuple[str, ...]
    alpha: float
    adjust: str
    plan: Path | None
    export_csv: Path | None
    export_plan: Path | None

    def check(self) -> None:
        """Exactly one of EXPERIMENT and --from-csv, each with only the options it reads (one given to the
        other would be ignored in silence: a stored experiment is analysed with its own plan), and their
        files; else a `ConfigError` naming the option."""
        if (self.experiment is None) == (self.from_csv is None):
            raise ConfigError("give either EXPERIMENT or --from-csv FILE (exactly one)")
        if self.from_csv is not None:
            self._check_csv(self.from_csv)
            return
        csv_only = {
            "--control": self.control is not None,
            "--metric": bool(self.metric),
            "--alpha": self.alpha != DEFAULT_ALPHA,
            "--adjust": self.adjust != DEFAULT_ADJUST,
            "--plan": self.plan is not None,
        }
        stray = next((option for option, given in csv_only.items() if given), None)
        if stray is not None:
            raise ConfigError(
                f"{stray}: expected with --from-csv only (EXPERIMENT is analysed with its stored plan), "
                "found it with EXPERIMENT"
            )
        output_file(self.export_csv, "--export-csv")
        output_file(self.export_plan, "--export-plan")

    def _check_csv(self, from_csv: Path) -> None:
        if self.control is None:
            raise ConfigError("--control: required with --from-csv")
        exports = {"--export-csv": self.export_csv, "--export-plan": self.export_plan}
        stray = next((option for option, path in exports.items() if path is not None), None)
        if stray is not None:
            raise ConfigError(
                f"{stray}: expected with EXPERIMENT (it writes a stored experiment's data), found it with "
                "--from-csv"
            )
        input_file(from_csv, "--from-csv")
        input_file(self.plan, "--plan")
