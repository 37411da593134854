"""`shadowlab prices show MODEL` and `shadowlab prices import FILE`: what a model costs, by token class and
long-context tier, and where that price comes from; a LiteLLM-format file checked before it is used."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shadowlab.config import Settings
from shadowlab.files import input_file, output_file, write_output
from shadowlab.pricing import ModelPrice, PriceFileError, PriceTable, load_price_table, read_price_file

# (label, attribute, what it falls back to when the entry has no rate of its own)
_CLASSES = (
    ("input", "input", None),
    ("output", "output", None),
    ("cache write (5 min)", "cache_creation", "input"),
    ("cache write (1 h)", "cache_creation_1h", "cache write (5 min)"),
    ("cache read", "cache_read", "input"),
    ("reasoning", "reasoning", "output (counted in output)"),
)


def _rate(value: float) -> str:
    return f"{value:.4g} USD/token = ${value * 1e6:,.4g} per million"


def describe_price(table: PriceTable, model: str) -> Iterator[str]:
    """The lines of `prices show`: the name priced, the source and its date, each class, each tier."""
    price: ModelPrice = table.price(model)
    named = f"{model} (priced by its entry {price.model!r})" if price.model != model else model
    yield f"{named}: from {table.source_of(model)}"
    for label, name, fallback in _CLASSES:
        value = getattr(price, name)
        shown = _rate(value) if value is not None else f"none: billed as {fallback}"
        yield f"  {label + ':':<21}{shown}"
    if not price.tiers:
        yield "  long context: no tier (every request at the rates above)"
    for tier in price.tiers:
        rates = ", ".join(
            f"{label} {_rate(value)}"
            for label, value in (("input", tier.input), ("output", tier.output),
                                 ("cache write", tier.cache_creation), ("cache read", tier.cache_read))
            if value is not None
        )  # fmt: skip
        yield f"  input above {tier.above_tokens:,} tokens (the whole request): {rates}"


def import_report(path: Path, table: PriceTable) -> Iterator[str]:
    """The lines of `prices import`: priced models, skipped entries by reason."""
    yield f"{path}: {len(table.models())} models priced"
    if table.skipped:
        yield f"  {table.skipped_summary()}"


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    prices_app = typer.Typer(
        help="Model prices (LiteLLM's format): show one, check a file.", no_args_is_help=True
    )
    app.add_typer(prices_app, name="prices")

    @prices_app.command("show")
    def show(
        ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model name, as an arm names it.")]
    ) -> None:
        """MODEL's price per token class and long-context tier, and the file (with its date) it comes from."""
        table = load_price_table(settings_of(ctx).prices_file)
        for line in describe_price(table, model):
            typer.echo(line)

    @prices_app.command("import")
    def import_(
        file: Annotated[
            Path, typer.Argument(help="A price file in LiteLLM's format (e.g. its backup JSON).")
        ],
        out: Annotated[
            Path | None, typer.Option(help="Write the priced entries here, dated, for SHADOWLAB_PRICES_FILE.")
        ] = None,
    ) -> None:
        """Check FILE (every entry that prices a chat call), say what it skips and why; --out writes it."""
        input_file(file, "FILE")
        output_file(out, "--out")
        table = read_price_file(file, "price file")
        if not table.models():
            raise PriceFileError(
                f"price file {file}: no entry prices a chat call ({table.skipped_summary()})"
            )
        for line in import_report(file, table):
            typer.echo(line)
        target = file
        if out is not None:
            spec = {
                "sample_spec": {
                    "_comment": f"imported from {file}",
                    "checked": f"{datetime.now(UTC):%Y-%m-%d}",
                }
            }
            write_output(out, json.dumps(spec | table.to_json(), indent=1) + "\n", "--out")
            typer.echo(f"wrote {out} ({len(table.models())} models)")
            target = out
        typer.echo(
            f"to use it: SHADOWLAB_PRICES_FILE={target.resolve()} (its models replace the shipped prices)"
        )
