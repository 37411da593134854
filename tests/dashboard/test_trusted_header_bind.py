"""A trusted header on an address beyond this machine needs the operator's word that only the proxy can
reach it (issue 20, defect 15): otherwise any client could send the header and be anyone."""

from __future__ import annotations

import pytest

from dashboard.command import check_auth
from shadowlab.config import load_settings
from shadowlab.errors import ConfigError


def test_a_trusted_header_on_a_public_bind_is_refused_without_behind_proxy() -> None:
    settings = load_settings(database_url="sqlite://", dashboard_trusted_header="X-Forwarded-User")
    with pytest.raises(
        ConfigError, match=r"--host 0\.0\.0\.0: with SHADOWLAB_DASHBOARD_TRUSTED_HEADER"
    ) as refused:
        check_auth(settings, "0.0.0.0", no_auth=False)
    assert "--behind-proxy" in str(refused.value) and "X-Forwarded-User" in str(refused.value)
    check_auth(settings, "0.0.0.0", no_auth=False, behind_proxy=True)
    check_auth(settings, "127.0.0.1", no_auth=False)
    check_auth(settings, "::1", no_auth=False)
