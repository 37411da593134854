"""The routing recommendation as a table a gateway or the application loads: segment predicate → model.

File format (YAML or JSON, same keys):

    format: shadowlab.routing/v1
    experiment: sonnet-to-cheaper
    dimension: route
    default: {arm: control, provider: anthropic, model: sim-sonnet}
    rules:
      - {segment: support-bot/faq, when: {service: support-bot, route: faq}, arm: haiku,
         provider: anthropic, model: sim-haiku, status: routed}

A request takes the first rule whose `when` holds (every field equal, or inside a `{min, max}` range with
max exclusive; fields `service`, `route`, `tags.<key>`, `prompt_chars`, `turn`), else `default`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analysis.facts import RequestFacts
from analysis.routing import RoutingRecommendation
from analysis.segments import Condition, Predicate

FORMAT = "shadowlab.routing/v1"


class RoutingTableError(Exception):
    """The routing table file is not valid; the message names the key and what was expected."""


@dataclass(frozen=True)
class Target:
    arm: str
    provider: str
    model: str


@dataclass(frozen=True)
class RoutingEntry:
    segment: str
    when: Predicate
    target: Target
    status: str


@dataclass(frozen=True)
class RoutingTable:
    experiment: str
    dimension: str
    default: Target
    rules: tuple[RoutingEntry, ...]

    def route(self, facts: RequestFacts) -> Target:
        """The target of the first rule matching the request, else the default (the control)."""
        return next((r.target for r in self.rules if matches(r.when, facts)), self.default)


def _field(facts: RequestFacts, name: str) -> Any:
    if name.startswith("tags."):
        value = facts.tags.get(name.removeprefix("tags."))
        return None if value is None else str(value)
    if name in ("service", "route", "prompt_chars", "turn"):
        return getattr(facts, name)
    raise RoutingTableError(
        f"predicate field {name!r}: expected service, route, tags.<key>, prompt_chars or turn"
    )


def _holds(condition: Condition, value: Any) -> bool:
    if isinstance(condition, Mapping):
        if not isinstance(value, int | float):
            return False
        return bool(condition.get("min", float("-inf")) <= value < condition.get("max", float("inf")))
    return bool(condition == value)


def matches(predicate: Predicate, facts: RequestFacts) -> bool:
    """Every field of the predicate holds for the request."""
    return all(_holds(condition, _field(facts, name)) for name, condition in predicate.items())


def table_from_recommendation(
    rec: RoutingRecommendation, experiment: str, arm_models: Sequence[tuple[str, str, str]]
) -> RoutingTable:
    """One rule per segment (too-small and control segments too, so the file shows every decision)."""
    models = {arm: Target(arm, provider, model) for arm, provider, model in arm_models}
    if rec.control not in models:
        raise RoutingTableError(
            f"arm models: expected the control arm {rec.control!r}, found {sorted(models)}"
        )

    def target(arm: str) -> Target:
        if arm not in models:
            raise RoutingTableError(f"arm models: expected arm {arm!r}, found {sorted(models)}")
        return models[arm]

    rules = tuple(RoutingEntry(s.segment, dict(s.predicate), target(s.arm), s.status) for s in rec.segments)
    return RoutingTable(experiment, rec.dimension, models[rec.control], rules)


def table_to_dict(table: RoutingTable) -> dict[str, Any]:
    def target(t: Target) -> dict[str, str]:
        return {"arm": t.arm, "provider": t.provider, "model": t.model}

    return {
        "format": FORMAT,
        "experiment": table.experiment,
        "dimension": table.dimension,
        "default": target(table.default),
        "rules": [
            {"segment": r.segment, "when": {k: (dict(v) if isinstance(v, Mapping) else v)
                                            for k, v in r.when.items()},
             **target(r.target), "status": r.status}
            for r in table.rules
        ],
    }  # fmt: skip


def write_routing_table(table: RoutingTable, path: Path) -> None:
    """JSON for a `.json` file, else YAML."""
    data = table_to_dict(table)
    text = (
        json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    )
    path.write_text(text, encoding="utf-8")


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise RoutingTableError(f"{where}, key {key}: expected a non-empty string, found {value!r}")
    return value


def _target(data: Any, where: str) -> Target:
    if not isinstance(data, Mapping):
        raise RoutingTableError(f"{where}: expected a mapping with arm, provider, model, found {data!r}")
    return Target(_str(data, "arm", where), _str(data, "provider", where), _str(data, "model", where))


def _condition(value: Any, where: str) -> Condition:
    if value is None or isinstance(value, str):
        return value
    numbers = isinstance(value, Mapping) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    )
    if numbers and value and set(value) <= {"min", "max"}:
        return {k: float(v) for k, v in value.items()}
    raise RoutingTableError(f"{where}: expected a string, null or {{min, max}} numbers, found {value!r}")


def table_from_dict(data: Any, where: str = "routing table") -> RoutingTable:
    """Validate a loaded mapping; RoutingTableError names the first wrong key."""
    if not isinstance(data, Mapping):
        raise RoutingTableError(f"{where}: expected a mapping, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise RoutingTableError(f"{where}, key format: expected {FORMAT!r}, found {data.get('format')!r}")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        raise RoutingTableError(f"{where}, key rules: expected a list, found {raw_rules!r}")
    rules = []
    for i, raw in enumerate(raw_rules):
        at = f"{where}, rules[{i}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("when"), Mapping):
            raise RoutingTableError(f"{at}: expected a mapping with a `when` mapping, found {raw!r}")
        when = {str(k): _condition(v, f"{at}, when.{k}") for k, v in raw["when"].items()}
        rules.append(RoutingEntry(_str(raw, "segment", at), when, _target(raw, at), _str(raw, "status", at)))
    return RoutingTable(
        _str(data, "experiment", where), _str(data, "dimension", where),
        _target(data.get("default"), f"{where}, key default"), tuple(rules),
    )  # fmt: skip


def read_routing_table(path: Path) -> RoutingTable:
    """Load a routing table file written by `shadowlab route --export` (YAML or JSON)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RoutingTableError(f"routing table {path}: cannot read it: {exc}".replace("\n", " ")) from None
    return table_from_dict(data, f"routing table {path}")
