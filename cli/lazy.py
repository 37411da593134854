"""Commands whose module is imported only when one of them runs: a command's start-up does not pay for the
others' dependencies (the SDKs, rich's progress bars, the store's spec models). `--help` imports them all."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Registration:
    """A module's `register(app[, settings_of])` and the names of the commands and groups it adds."""

    module: str
    names: tuple[str, ...]
    takes_settings: bool = True


def lazy_group(registrations: tuple[Registration, ...], settings_of: Callable[..., Any]) -> type[TyperGroup]:
    """The root group's class (`typer.Typer(cls=...)`): it adds a registration's commands on first use."""
    return type(
        "LazyCommands",
        (_LazyCommands,),
        {"registrations": registrations, "settings_of": staticmethod(settings_of)},
    )


class _LazyCommands(TyperGroup):
    registrations: ClassVar[tuple[Registration, ...]] = ()
    settings_of: ClassVar[Callable[..., Any]]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            for registration in self.registrations:
                if cmd_name in registration.names:
                    self._load(registration)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Any) -> list[str]:
        self._load_all()
        groups = {name for name, command in self.commands.items() if isinstance(command, TyperGroup)}
        names = list(self.commands)  # commands before groups, as Typer lists them
        return [n for n in names if n not in groups] + [n for n in names if n in groups]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not any(args[0] in r.names for r in self.registrations):
            self._load_all()  # an unknown name: suggest among every command
        return super().resolve_command(ctx, args)

    def _load_all(self) -> None:
        for registration in self.registrations:
            self._load(registration)

    def _load(self, registration: Registration) -> None:
        if all(name in self.commands for name in registration.names):
            return
        register = importlib.import_module(registration.module).register
        app = typer.Typer(rich_markup_mode=None, add_completion=False)
        if registration.takes_settings:
            register(app, type(self).settings_of)
        else:
            register(app)
        for name, command in typer.main.get_group(app).commands.items():
            self.add_command(command, name)
