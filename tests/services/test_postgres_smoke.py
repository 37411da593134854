"""The Postgres started by scripts/services.sh: version, role, database and listen address."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres


def test_server_is_postgres_15_or_newer(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            version_num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    finally:
        engine.dispose()
    assert version_num >= 150000, f"expected PostgreSQL >= 15, found server_version_num {version_num}"


def test_database_is_owned_by_shadowlab_role_that_can_create_databases(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT current_user, current_database(), pg_get_userbyid(d.datdba), r.rolcreatedb"
                    " FROM pg_database d, pg_roles r"
                    " WHERE d.datname = current_database() AND r.rolname = current_user"
                )
            ).one()
            listen = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
            port = conn.execute(sa.text("SHOW port")).scalar_one()
    finally:
        engine.dispose()
    assert tuple(row) == ("shadowlab", "shadowlab", "shadowlab", True)
    assert (listen, port) == ("127.0.0.1", str(sa.engine.make_url(postgres_url).port))
