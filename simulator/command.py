"""`shadowlab simulate`: the simulator as a command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `simulate` command to the CLI."""

    @app.command("simulate")
    def simulate(
        port: Annotated[
            int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")
        ] = 8765,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        profile: Annotated[
            Path | None, typer.Option(help="Profile file (YAML or JSON): per-model timing, quality, faults.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed: same seed, arm and request give the same answer.")] = 0,
    ) -> None:
        """Serve a fake Anthropic Messages API and OpenAI chat completions, with fault injection."""
        from simulator.profiles import ProfileSet, load_profiles
        from simulator.runner import serve_forever
        from simulator.server import Simulator

        profiles = load_profiles(profile) if profile else ProfileSet()
        serve_forever(Simulator(profiles, seed=seed), host, port, lambda line: typer.echo(line))
