"""A `shadowlab` command line read by the installed CLI's own parser (typer's click), with nothing run: what
a document or a page tells a user to type is checked against the real commands, options and types."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from typer.core import TyperGroup

try:  # typer 0.2x vendors click
    from typer._click.core import Command, Context
except ImportError:  # pragma: no cover
    from click.core import Command, Context  # type: ignore[assignment]


def parse(args: list[str]) -> Context:
    """Parse `shadowlab ARGS` down to the last subcommand with the real CLI: flags, types and ranges are
    checked and nothing runs (`make_context` calls no command callback). Raises click's UsageError."""
    from cli.main import app

    command = typer.main.get_command(app)
    ctx = command.make_context("shadowlab", list(args))
    while isinstance(ctx.command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:  # a group that runs itself (`dashboard`)
            break
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        ctx = sub.make_context(name, rest, parent=ctx)
    return ctx


def command_at(path: Sequence[str]) -> Command:
    """The installed CLI's command at `path` (`["experiment", "pause"]`); fails naming the missing word."""
    from cli.main import app

    command: Command = typer.main.get_command(app)
    ctx = Context(command, info_name="shadowlab")
    for name in path:
        sub = command.get_command(ctx, name) if isinstance(command, TyperGroup) else None
        assert sub is not None, f"{ctx.command_path}: no command {name!r}"
        ctx, command = Context(sub, info_name=name, parent=ctx), sub
    return command


def options_of(command: Command) -> set[str]:
    """Every option's spellings (`--reason`, `-h`, …) of `command`."""
    return {spelling for param in command.params for spelling in param.opts if spelling.startswith("-")}
