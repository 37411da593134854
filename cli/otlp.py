"""`shadowlab otlp convert FILE`: OpenTelemetry GenAI spans (an OTLP/HTTP JSON export) as capture JSONL for
`shadowlab ingest --source file`, with the spans that cannot be captures and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from shadowlab.errors import ConfigError
from shadowlab.files import input_file, output_file, write_output


def register(app: typer.Typer) -> None:
    otlp_app = typer.Typer(help="OpenTelemetry GenAI spans as captures.", no_args_is_help=True)
    app.add_typer(otlp_app, name="otlp")

    @otlp_app.command("convert")
    def convert(
        file: Annotated[
            Path, typer.Argument(help="OTLP/HTTP JSON trace export (one object, or one per line).")
        ],
        out: Annotated[Path, typer.Option(help="Captures, one per line, for `ingest --source file`.")],
        rejects: Annotated[
            Path | None, typer.Option(help="Rejected spans with their reason, one JSON object per line.")
        ] = None,
    ) -> None:
        """Turn GenAI chat spans into schema-v1 captures; a span without prompt content is rejected."""
        from shadowlab.otlp import captures_from_otlp, read_otlp_documents

        input_file(file, "FILE")
        output_file(out, "--out")
        output_file(rejects, "--rejects")
        try:
            result = captures_from_otlp(read_otlp_documents(file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"OTLP file {file}: cannot read ({exc.strerror})") from None
        except ValueError as exc:  # OtlpFormatError, or a line that is not JSON
            raise ConfigError(f"OTLP file {file}: {exc}") from None
        write_output(out, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in result.captures), "--out")
        if rejects is not None:
            lines = (
                json.dumps({"span": r.span, "code": r.code, "reason": r.reason}) + "\n"
                for r in result.rejected
            )
            write_output(rejects, "".join(lines), "--rejects")
        typer.echo(
            f"{len(result.captures)} captures -> {out}; {result.ignored} spans not GenAI chat calls ignored"
        )
        for reason, count in Counter(r.reason for r in result.rejected).most_common():
            typer.echo(f"rejected {count}: {reason}")
