"""prompt length and user turn of each capture (nullable), backfilled from the stored request

Revision ID: 0006_request_shape
Revises: 0005_prompt_fingerprint
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shadowlab.request_shape import prompt_chars, user_turn

revision: str = "0006_request_shape"
down_revision: str | None = "0005_prompt_fingerprint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 2000
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _captures() -> sa.TableClause:
    return sa.table(
        "captured_requests",
        sa.column("id", _ID),
        sa.column("request", sa.JSON()),
        sa.column("prompt_chars", sa.Integer()),
        sa.column("user_turn", sa.Integer()),
    )


def backfill(conn: sa.Connection, batch: int = _BATCH) -> int:
    """Fill `prompt_chars` and `user_turn` where either is NULL, `batch` rows at a time in id order; returns
    rows filled. Computed in Python with the functions ingest uses, so old and new rows agree."""
    table = _captures()
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values(prompt_chars=sa.bindparam("chars"), user_turn=sa.bindparam("turn"))
    )
    filled, after = 0, None
    while True:
        unfilled = sa.or_(table.c.prompt_chars.is_(None), table.c.user_turn.is_(None))
        query = sa.select(table.c.id, table.c.request).where(unfilled)
        if after is not None:
            query = query.where(table.c.id > after)
        rows = conn.execute(query.order_by(table.c.id).limit(batch)).all()
        if not rows:
            return filled
        conn.execute(
            update,
            [{"row_id": r.id, "chars": prompt_chars(r.request), "turn": user_turn(r.request)} for r in rows],
        )
        filled += len(rows)
        after = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("captured_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_chars", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("user_turn", sa.Integer(), nullable=True))
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("captured_requests", schema=None) as batch_op:
        batch_op.drop_column("user_turn")
        batch_op.drop_column("prompt_chars")
