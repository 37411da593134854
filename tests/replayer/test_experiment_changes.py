"""`shadowlab experiment budget|start|pause|resume|conclude --reason` leave a trail: who (the command line
has no signed-in user: "local"), when, before → after and why, as the commands are typed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shadowlab import store
from shadowlab.db import create_engine, session_factory
from tests.support.bad_inputs import SPEC


def test_budget_changes_and_transitions_from_the_command_line_are_recorded(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    env = {"SHADOWLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'lab.db'}"}
    (tmp_path / "spec.yaml").write_text(SPEC)
    steps = [
        ("db", "upgrade"),
        ("experiment", "create", "spec.yaml"),
        ("experiment", "start", "x"),
        ("experiment", "pause", "x", "--reason", "provider outage <b>"),
        ("experiment", "budget", "x", "2.5", "--reason", "more prompts"),
        ("experiment", "pause", "x", "--reason", "refused: leaves no row"),
        ("experiment", "resume", "x"),
        ("experiment", "conclude", "x", "--reason", "shipped"),
    ]
    codes = [cli(*step, env=env, cwd=tmp_path).returncode for step in steps]
    assert codes == [0, 0, 0, 0, 0, 2, 0, 0]
    engine = create_engine(env["SHADOWLAB_DATABASE_URL"])
    with session_factory(engine)() as session:
        experiment = store.experiments.by_name("x", session=session)
        trail = store.changes.history(experiment.id, session=session)
        rows = [(c.field, c.before, c.after, c.changed_by, c.reason) for c in reversed(trail)]
    engine.dispose()
    assert rows == [
        ("status", "draft", "running", "local", None),
        ("status", "running", "paused", "local", "provider outage <b>"),
        ("budget", "1.0", "2.5", "local", "more prompts"),
        ("status", "paused", "running", "local", None),
        ("status", "running", "concluded", "local", "shipped"),
    ]
