"""Files named on the command line, checked before the work that reads or fills them: a missing input or an
output that cannot be written is one `error:` line naming the option (exit 2), never a late traceback."""

from __future__ import annotations

import os
from pathlib import Path

from shadowlab.errors import ConfigError

__all__ = ["input_file", "output_file", "output_folder", "write_output"]


def input_file(path: Path | None, option: str) -> None:
    """`path` (an option's value; None: not given) is a file this process may read; else a `ConfigError`
    naming `option` (`--from-csv`, `FILE`)."""
    if path is None:
        return
    if not path.exists():
        raise ConfigError(f"{option}: no such file: {path}")
    if path.is_dir():
        raise ConfigError(f"{option}: expected a file, found a folder: {path}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{option}: cannot read {path} (permission denied)")


def output_file(path: Path | None, option: str) -> None:
    """`path` (an option's value; None: not given) is where this process may write a file (in an existing
    folder; created or replaced later); else a `ConfigError` naming `option` (`--out`, `--export-csv`)."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option}: expected a file, found a folder: {path}")
    folder = path.parent
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise ConfigError(f"{option}: cannot write {path}: {what}: {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option}: cannot write {path} (permission denied)")


def output_folder(path: Path, option: str) -> None:
    """`path` is a folder this process may write in, made now (with its parents) when missing; else a
    `ConfigError` naming `option`."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option}: expected a folder, found a file: {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create the folder {path} ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{option}: cannot write in {path} (permission denied)")


def write_output(path: Path, text: str, option: str) -> None:
    """Write `text` to `path` (UTF-8); a failure the early check could not foresee (a full disk) is a
    `ConfigError` naming `option` too."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot write {path} ({exc.strerror})") from None
