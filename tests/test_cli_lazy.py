"""The CLI imports a command's module only when one of its commands runs, and lists every command."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from cli.main import COMMANDS, app, settings_of


def test_each_registration_names_exactly_the_commands_its_module_adds() -> None:
    # cli.main lists the names so that it need not import the modules: they must not drift apart.
    for registration in COMMANDS:
        sub = typer.Typer()
        register = importlib.import_module(registration.module).register
        if registration.takes_settings:
            register(sub, settings_of)
        else:
            register(sub)
        assert set(typer.main.get_group(sub).commands) == set(registration.names), registration.module


def test_a_command_imports_only_its_own_module() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "result = CliRunner().invoke(app, ['simulate', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(r.module for r in __import__('cli.main').main.COMMANDS if r.module in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['simulator.command']"


def test_help_lists_every_command_in_typers_order() -> None:
    names = typer.main.get_group(app).list_commands(typer.Context(typer.main.get_group(app)))
    lazy = [name for registration in COMMANDS for name in registration.names]
    groups = ["db", "schema", "topics", "experiment", "dashboard", "prices", "otlp"]
    assert names == ["doctor", "demo", *[n for n in lazy if n not in groups], *groups]
