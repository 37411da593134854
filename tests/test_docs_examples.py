"""The documented experiment YAML is valid: `experiment create` accepts it, the metrics its plan names too."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cli.experiments import check_new_spec
from shadowlab.experiment import check_providers, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def test_the_experiment_example_parses_and_passes_the_checks_of_experiment_create() -> None:
    text = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    example = re.search(r"## A complete example\n+```yaml\n(.*?)```", text, flags=re.S)
    assert example is not None
    spec = parse_spec(yaml.safe_load(example.group(1)))
    check_providers(spec)
    check_new_spec(spec, "docs/experiments.md")  # its plan's metrics included
