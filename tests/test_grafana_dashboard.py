"""docs/grafana/shadowlab.json charts only metrics the code exports, and every exported metric somewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ingest.metrics import IngestMetrics
from replayer.metrics import WorkerMetrics
from scoring.metrics import ScoreMetrics

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "shadowlab.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported(registry: CollectorRegistry) -> dict[str, str]:
    """Series name as Prometheus scrapes it → its metric family."""
    names = {}
    for family in registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def expressions(document: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in document["panels"] for t in panel.get("targets", [])]


def test_the_dashboard_charts_only_and_all_of_the_exported_metrics() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert document["title"] and document["panels"]
    code = exported(IngestMetrics().registry) | exported(WorkerMetrics.create().registry)
    code |= exported(ScoreMetrics().registry)
    named = {name for expr in expressions(document) for name in re.findall(r"\bshadowlab_\w+", expr)}
    assert named, "no expression names a shadowlab metric"
    assert named <= set(code), f"not exported by the code: {sorted(named - set(code))}"
    assert {code[n] for n in named} == set(code.values()), "exported but not charted"
    for panel in document["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
