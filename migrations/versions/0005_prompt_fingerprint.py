"""prompt fingerprint of each capture (nullable, indexed), backfilled from the stored request

Revision ID: 0005_prompt_fingerprint
Revises: 0004_judge_spend
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shadowlab.fingerprint import body_fingerprint

revision: str = "0005_prompt_fingerprint"
down_revision: str | None = "0004_judge_spend"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 2000
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _captures() -> sa.TableClause:
    return sa.table(
        "captured_requests",
        sa.column("id", _ID),
        sa.column("api", sa.String()),
        sa.column("request", sa.JSON()),
        sa.column("prompt_fingerprint", sa.String()),
    )


def backfill(conn: sa.Connection, batch: int = _BATCH) -> int:
    """Fill `prompt_fingerprint` where it is NULL, `batch` rows at a time in id order; returns rows filled.

    Computed in Python with the same function ingest uses, so old and new rows agree on any database."""
    table = _captures()
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values(prompt_fingerprint=sa.bindparam("fingerprint"))
    )
    filled, after = 0, None
    while True:
        unfilled = table.c.prompt_fingerprint.is_(None)
        query = sa.select(table.c.id, table.c.api, table.c.request).where(unfilled)
        if after is not None:
            query = query.where(table.c.id > after)
        rows = conn.execute(query.order_by(table.c.id).limit(batch)).all()
        if not rows:
            return filled
        conn.execute(
            update, [{"row_id": r.id, "fingerprint": body_fingerprint(r.api, r.request)} for r in rows]
        )
        filled += len(rows)
        after = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("captured_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_fingerprint", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_captured_requests_prompt_fingerprint"), ["prompt_fingerprint"], unique=False
        )
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("captured_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_captured_requests_prompt_fingerprint"))
        batch_op.drop_column("prompt_fingerprint")
