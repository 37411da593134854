"""`shadowlab dashboard`: run the Streamlit app with the settings' database URL in its environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from shadowlab.config import Settings

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line for the dashboard."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add `shadowlab dashboard` to the CLI."""

    @app.command("dashboard")
    def dashboard(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
    ) -> None:
        """Serve the dashboard (experiments, verdict and evidence, side-by-side answers, live monitor)."""
        settings = settings_of(ctx)
        env = dict(os.environ) | {"SHADOWLAB_DATABASE_URL": settings.database_url}
        typer.echo(f"dashboard on http://{host}:{port} (Ctrl-C stops it)")
        sys.stdout.flush()
        # Become the Streamlit server, so signals (Ctrl-C, SIGTERM from a supervisor) reach it directly.
        command = streamlit_command(host, port)
        os.execve(command[0], command, env)
