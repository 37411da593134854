"""The Live page's caption tells a user which command records a change's reason: every command and option it
names is the installed CLI's, and its example, run as written, puts its reason in the page's table."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from analysis import display
from dashboard.views.common import md_escape
from dashboard.views.live import CHANGES_CAPTION
from shadowlab import store
from shadowlab.budget import set_budget
from shadowlab.db import create_engine, session_factory, session_scope
from tests.support.cli_args import command_at, options_of, parse


def _raise_budget(url: str, experiment_id: int) -> str:
    """A budget change (the caption shows above the changes); the experiment's name."""
    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        experiment = store.experiments.by_id(experiment_id, session=session, lock=True)
        set_budget(session, experiment, 30.0, by="ana")
        name = experiment.name
    engine.dispose()
    return name


def test_the_live_caption_names_the_clis_commands_and_its_example_records_the_reason(
    seeded: Any, app_test: Callable[..., AppTest], migrated: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    name = _raise_budget(migrated, seeded.experiment_id)
    at = app_test("views/live.py")
    assert CHANGES_CAPTION in [c.value for c in at.caption]
    spans = re.findall(r"`([^`]+)`", CHANGES_CAPTION)
    options = {span for span in spans if span.startswith("--")}
    group, first = spans[1].split()[1:]  # `shadowlab experiment start`, then its siblings' names alone
    named = [first, *(span for span in spans if re.fullmatch(r"[a-z]+", span))]
    assert options == {"--reason"}, spans
    for command in named:
        assert options <= options_of(command_at([group, command])), command
    commands = command_at([group]).commands  # type: ignore[attr-defined]
    with_reason = [c for c in commands if "--reason" in options_of(commands[c])]
    assert sorted(named) == sorted(with_reason)  # and a command that learns --reason is named too

    example = shlex.split(spans[-1])
    assert example[0] == "shadowlab"
    assert parse(example[1:]).params["reason"] == "judge costs too much"  # the real parser, nothing run
    ran = cli(*[name if word == "NAME" else word for word in example[1:]],
              env={"SHADOWLAB_DATABASE_URL": migrated}, cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    table = app_test("views/live.py").table[-1].value
    assert list(table["change"])[0] == md_escape("running → paused")  # newest first
    assert list(table["reason"]) == [md_escape("judge costs too much"), md_escape(display.MISSING)]
