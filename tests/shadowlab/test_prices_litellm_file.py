"""Issue 24's acceptance on LiteLLM's own price file, not a sample: `SHADOWLAB_PRICES_FILE` pointing at the
`model_prices_and_context_window_backup.json` inside the installed litellm wheel (a dev dependency; located,
never imported: importing litellm fetches its map from the network). `experiment start` starts a chat
experiment with the file's prices; `experiment create` refuses an embedding-only model with one clear error
line; each load of the file logs one warning saying what it skipped (on stderr in a terminal: logging's
last-resort handler; here pytest's log capture holds it)."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from cli.main import main

LITELLM_FILE = Path(
    str(metadata.distribution("litellm").locate_file("litellm/model_prices_and_context_window_backup.json"))
)


def _shadowlab(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, list[str]]:
    """The console entry point in this process: exit code, stdout, stderr lines."""
    monkeypatch.setattr(sys, "argv", ["shadowlab", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err.splitlines()


def _skipped_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "shadowlab.pricing"]
    caplog.clear()
    return lines


@pytest.mark.postgres
def test_litellms_own_file_prices_a_chat_experiment_and_an_embedding_model_is_refused_at_create(
    pg_migrated: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", pg_migrated)
    monkeypatch.setenv("SHADOWLAB_PRICES_FILE", str(LITELLM_FILE))
    for name, candidate in (("chat", "gpt-5.2"), ("embed", "text-embedding-3-small")):
        spec = {
            "name": name,
            "control": {"name": "control", "provider": "openai", "model": "gpt-4o"},
            "candidates": [{"name": "cand", "provider": "openai", "model": candidate}],
            "allowed_providers": ["openai"],
            "budget": {"usd": 5},
            "plan": {"primary_metric": "cost_usd", "primary_direction": "lower_is_better"},
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    assert _shadowlab(monkeypatch, capsys, "experiment", "create", str(tmp_path / "chat.yaml"))[0] == 0
    # refused at create already, with the reason (`start` checks again, against the prices of the moment)
    code, out, err = _shadowlab(monkeypatch, capsys, "experiment", "create", str(tmp_path / "embed.yaml"))
    assert (code, out) == (2, "")
    assert err == [
        f"error: {tmp_path / 'embed.yaml'}: candidates[0].model (arm 'cand'): price of model "
        "'text-embedding-3-small': its price-file entry cannot price a chat call (mode embedding, not a chat "
        "model)"
    ]

    caplog.clear()
    code, out, err = _shadowlab(monkeypatch, capsys, "experiment", "start", "chat")
    assert (code, out, err) == (0, "started 'chat'; prices snapshotted for gpt-4o, gpt-5.2\n", [])
    [warning] = _skipped_warnings(caplog)
    skipped = f"prices from {LITELLM_FILE}: "
    assert warning.startswith(skipped) and "entries skipped" in warning and "mode embedding" in warning
    litellm = json.loads(LITELLM_FILE.read_text(encoding="utf-8"))
    engine = sa.create_engine(pg_migrated)
    with engine.connect() as conn:
        query = sa.text("select price_snapshot from experiments where name = 'chat'")
        snapshot = conn.execute(query).scalar_one()
    engine.dispose()
    for model in ("gpt-4o", "gpt-5.2"):  # the file's own prices, not the shipped ones
        for key in ("input_cost_per_token", "output_cost_per_token"):
            assert snapshot[model][key] == litellm[model][key]
