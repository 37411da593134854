"""The scorers an experiment configures, from its spec's `scoring` section.

```yaml
scoring:
  judges:
    - {name: quality, kind: pointwise, provider: anthropic, model: claude-sonnet-4-5, rubric: "..."}
    - {name: preference, kind: pairwise, provider: anthropic, model: claude-sonnet-4-5}
  checks:
    - {name: valid_json, kind: json_valid}
    - {name: short, kind: length, max_chars: 2000}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scoring.base import ScorerConfigError
from scoring.checks import CheckScorer
from scoring.judge import JudgeSpec

__all__ = ["ScoringSpec", "scoring_spec"]


@dataclass(frozen=True)
class ScoringSpec:
    judges: tuple[JudgeSpec, ...]
    checks: tuple[CheckScorer, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.judges) + tuple(c.name for c in self.checks)

    def only(self, name: str | None) -> ScoringSpec:
        """The scorer called `name` (all when None); ScorerConfigError lists the known names."""
        if name is None:
            return self
        if name not in self.names:
            raise ScorerConfigError(
                f"--scorer: expected one of {', '.join(self.names) or '(none)'}, found {name!r}"
            )
        return ScoringSpec(
            tuple(j for j in self.judges if j.name == name), tuple(c for c in self.checks if c.name == name)
        )


def _entries(section: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = section.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ScorerConfigError(f"scoring.{key}: expected a list of mappings, found {type(entries).__name__}")
    return entries


def scoring_spec(spec: Mapping[str, Any]) -> ScoringSpec:
    """Parse the `scoring` section of an experiment spec; names must be unique across judges and checks."""
    section = spec.get("scoring") or {}
    if not isinstance(section, Mapping):
        raise ScorerConfigError(f"scoring: expected a mapping, found {type(section).__name__}")
    judges: list[JudgeSpec] = []
    for index, entry in enumerate(_entries(section, "judges")):
        try:
            judges.append(JudgeSpec.model_validate(dict(entry)))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ScorerConfigError(f"scoring.judges[{index}].{where}: {err['msg']}") from None
    checks: list[CheckScorer] = []
    for index, entry in enumerate(_entries(section, "checks")):
        params = {k: v for k, v in entry.items() if k not in ("name", "kind")}
        if "name" not in entry or "kind" not in entry:
            raise ScorerConfigError(f"scoring.checks[{index}]: expected `name` and `kind`")
        checks.append(CheckScorer(str(entry["name"]), str(entry["kind"]), params))
    result = ScoringSpec(tuple(judges), tuple(checks))
    duplicates = sorted({n for n in result.names if result.names.count(n) > 1})
    if duplicates:
        raise ScorerConfigError(f"scoring: expected unique scorer names, found {', '.join(duplicates)} twice")
    return result
