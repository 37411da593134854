"""A bad input of the corpus (`BadInput`), the files and settings its cases share, and builders of the
cases that differ only in a few fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Database = Literal["none", "migrated", "experiment"]


@dataclass(frozen=True)
class BadInput:
    name: str
    argv: tuple[str, ...]
    code: int
    needle: str  # in the `error:` line: the field, and what was expected
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    db: Database = "none"
    # In a process of its own: kafka-python leaves the sockets of a bootstrap that failed open, and this
    # process would warn about them later (the command exits right after, as it should).
    own_process: bool = False


SPEC = """\
name: x
control: {name: control, provider: anthropic, model: claude-haiku-4-5}
candidates:
  - {name: mini, provider: openai, model: gpt-4o-mini}
allowed_providers: [anthropic, openai]
budget: {usd: 1}
plan: {primary_metric: judge_score}
scoring: {judges: [{name: judge_score, kind: pointwise, model: claude-haiku-4-5}]}
"""
CSV = "request_id,arm,judge_score\n" + "".join(
    f"r{i},ctrl,{5 + i % 3}\nr{i},cand,{6 + i % 2}\n" for i in range(8)
)
SQLITE = {"SHADOWLAB_DATABASE_URL": "sqlite:///x.db"}
UNREACHABLE_PG = "postgresql+psycopg://shadowlab:s3cret-pw@127.0.0.1:{free_port}/shadowlab"


def spec_case(name: str, spec: str, needle: str) -> BadInput:
    """`experiment create` of a bad spec.yaml holding `spec`, on a migrated SQLite file."""
    return BadInput(
        f"spec: {name}",
        ("experiment", "create", "spec.yaml"),
        2,
        needle,
        SQLITE,
        {"spec.yaml": spec},
        "migrated",
    )


def env_case(name: str, variable: str, value: str, needle: str, code: int = 2) -> BadInput:
    """`doctor` with one bad setting."""
    return BadInput(f"env: {name}", ("doctor",), code, needle, {variable: value})


def ingest_case(name: str, flags: tuple[str, ...], needle: str) -> BadInput:
    """`ingest --source file` with bad `flags`, on a migrated SQLite file."""
    argv = ("ingest", "--source", "file", "c.jsonl", *flags)
    return BadInput(name, argv, 2, needle, SQLITE, {"c.jsonl": "{}\n"}, "migrated")


def on_x(name: str, argv: tuple[str, ...], needle: str, files: dict[str, str] | None = None) -> BadInput:
    """A command on stored experiment `x` (and `files`), exit 2."""
    return BadInput(name, argv, 2, needle, SQLITE, files or {}, "experiment")
