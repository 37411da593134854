"""Shared by the tests of a database that cannot be used: its error as the check raises it, and a command's
one `error:` line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from shadowlab.db import check_connection, create_engine
from shadowlab.errors import ShadowlabError

CliRunner = Callable[..., subprocess.CompletedProcess[str]]
PASSWORD = "h3-not-the-password"  # a password the tests give where it is wrong: never in a message


def checked(url: str) -> ShadowlabError:
    """The error `check_connection` raises on `url` (the test fails if it passes)."""
    engine = create_engine(url, connect_timeout_s=2)
    try:
        with pytest.raises(ShadowlabError) as raised:
            check_connection(engine)
    finally:
        engine.dispose()
    return raised.value


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """A command's stderr that is one `error:` line, with exit `code`, no traceback and no `PASSWORD`."""
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    return result.stderr
