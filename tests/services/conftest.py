"""Runs the services restart tests after every other test, so restarting the services breaks none."""

from __future__ import annotations

import pytest

RESTART_MODULE = "test_services_idempotent.py"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the restart module's tests to the end of the session, keeping their own order.

    Hooks in a sub-directory conftest still see the whole session's items, so this orders the
    full `make test` run, not only tests/services; `trylast` lets other reorderings go first.
    """
    restart = [item for item in items if item.path.name == RESTART_MODULE]
    if restart:
        others = [item for item in items if item.path.name != RESTART_MODULE]
        items[:] = others + restart
