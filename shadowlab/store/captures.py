"""Captured requests."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.errors import NotFoundError
from shadowlab.models import CapturedRequest

__all__ = ["by_id", "by_request_ids"]


def by_id(captured_request_id: int, *, session: Session) -> CapturedRequest:
    """The capture with this row id; `NotFoundError` when there is none (deleted by retention or forget)."""
    found = session.get(CapturedRequest, captured_request_id)
    if found is None:
        raise NotFoundError(f"captured request id {captured_request_id}: not found")
    return found


def by_request_ids(request_ids: Collection[str], *, session: Session) -> dict[str, CapturedRequest]:
    """Request id → capture, for the ids that are stored (the others are left out)."""
    if not request_ids:
        return {}
    rows = session.scalars(
        sa.select(CapturedRequest).where(CapturedRequest.request_id.in_(list(request_ids)))
    )
    return {row.request_id: row for row in rows}
