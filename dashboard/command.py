"""`shadowlab dashboard`: run the Streamlit app with the settings in its environment; `hash-password`."""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from shadowlab.config import Settings
from shadowlab.errors import ConfigError

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line for the dashboard."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard_env(settings: Settings) -> dict[str, str]:
    """The settings the app reads, passed explicitly (they may have come from `.env` or flags)."""
    env = {
        "SHADOWLAB_DATABASE_URL": settings.database_url,
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES": str(settings.dashboard_session_minutes),
    }
    if settings.dashboard_users is not None:
        env["SHADOWLAB_DASHBOARD_USERS"] = str(settings.dashboard_users.resolve())
    if settings.dashboard_trusted_header:
        env["SHADOWLAB_DASHBOARD_TRUSTED_HEADER"] = settings.dashboard_trusted_header
    return env


def check_auth(settings: Settings, host: str, no_auth: bool) -> None:
    """Fail before serving: a malformed users file, or no authentication on a non-loopback address."""
    if settings.dashboard_users is not None:
        from dashboard.auth import load_users  # bcrypt loads only when a users file is checked

        load_users(settings.dashboard_users)
    configured = settings.dashboard_users is not None or bool(settings.dashboard_trusted_header)
    if not configured and not no_auth and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: serving beyond this machine needs SHADOWLAB_DASHBOARD_USERS or "
            "SHADOWLAB_DASHBOARD_TRUSTED_HEADER (or --no-auth, if you really mean everyone may decide)"
        )


def read_password() -> str:
    """From a hidden prompt on a terminal (asked twice), else the first line of stdin."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add `shadowlab dashboard` (serve) and `shadowlab dashboard hash-password` to the CLI."""
    group = typer.Typer(invoke_without_command=True, no_args_is_help=False)

    @group.callback()
    def dashboard(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
        no_auth: Annotated[
            bool, typer.Option("--no-auth", help="Serve without sign-in even on a non-loopback address.")
        ] = False,
    ) -> None:
        """Serve the dashboard (experiments, verdict and evidence, labelling, decisions, live monitor)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = settings_of(ctx)
        check_auth(settings, host, no_auth)
        env = dict(os.environ) | dashboard_env(settings)
        if settings.dashboard_users is None and not settings.dashboard_trusted_header:
            typer.echo("warning: authentication is off (no SHADOWLAB_DASHBOARD_USERS): everyone may decide")
        typer.echo(f"dashboard on http://{host}:{port} (Ctrl-C stops it)")
        sys.stdout.flush()
        # Become the Streamlit server, so signals (Ctrl-C, SIGTERM from a supervisor) reach it directly.
        command = streamlit_command(host, port)
        os.execve(command[0], command, env)

    @group.command("hash-password")
    def hash_password_command() -> None:
        """Read a password (prompt, or stdin when piped) and print its bcrypt hash for the users file."""
        from dashboard.auth import hash_password

        typer.echo(hash_password(read_password()))

    app.add_typer(group, name="dashboard")
