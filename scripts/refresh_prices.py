"""Refresh the shipped `shadowlab/prices.json` from LiteLLM's price file (by default the backup copy inside
the installed litellm wheel, a dev dependency): the entries of Anthropic's and OpenAI's own APIs
(`litellm_provider` anthropic or openai, no provider prefix) that price a chat call, with their price keys,
context sizes and mode, dated with the day and litellm's version in `sample_spec`.

    .venv/bin/python scripts/refresh_prices.py [LITELLM_FILE]

Then read the diff: a model the tests or the demo price must keep its price, or the test changes on purpose.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from shadowlab.pricing import PriceTable

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "shadowlab" / "prices.json"
PROVIDERS = frozenset({"anthropic", "openai"})
KEPT = ("litellm_provider", "mode", "max_input_tokens", "max_output_tokens")  # besides the prices


def shipped_table(litellm_file: dict[str, Any], version: str, day: str) -> dict[str, Any]:
    """The shipped file's content: the vendors' own chat entries of `litellm_file`, prices as PriceTable reads
    them (service-tier and batch variants, tool prices and the like left out)."""
    own = {
        model: entry
        for model, entry in litellm_file.items()
        if isinstance(entry, dict) and entry.get("litellm_provider") in PROVIDERS and "/" not in model
    }
    table = PriceTable.from_json(own, "litellm")
    spec = {
        "_comment": (
            "USD per token, LiteLLM's format: the chat entries of litellm_provider anthropic and openai in "
            f"litellm {version}'s model_prices_and_context_window_backup.json (standard tier), written by "
            "scripts/refresh_prices.py"
        ),
        "checked": f"{day}, litellm {version}",
    }
    entries = {
        model: {key: own[model][key] for key in KEPT if key in own[model]} | prices
        for model, prices in table.to_json().items()
    }
    return {"sample_spec": spec} | entries


def main(argv: list[str]) -> int:
    version = metadata.version("litellm")
    # Located, not imported: importing litellm fetches its price map from the network.
    wheel_copy = metadata.distribution("litellm").locate_file(
        "litellm/model_prices_and_context_window_backup.json"
    )
    source = Path(argv[0]) if argv else Path(str(wheel_copy))
    content = shipped_table(
        json.loads(source.read_text(encoding="utf-8")), version, f"{datetime.now(UTC):%Y-%m-%d}"
    )
    TARGET.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}: {len(content) - 1} models from {source} (litellm {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
