"""Reading reconciliation runs and anomalies; resolving an anomaly."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db.models import Anomaly, ReconciliationRun


async def latest_run(connection: AsyncSession | AsyncConnection) -> Any:
    statement = select(ReconciliationRun).order_by(ReconciliationRun.checked_at.desc()).limit(1)
    return (await connection.execute(statement)).mappings().one_or_none()


def _anomalies(status: str, kind: str | None):
    conditions = []
    if status == "open":
        conditions.append(Anomaly.resolved_at.is_(None))
    elif status == "resolved":
        conditions.append(Anomaly.resolved_at.is_not(None))
    if kind is not None:
        conditions.append(Anomaly.kind == kind)
    return conditions


async def list_anomalies(
    connection: AsyncSession | AsyncConnection, *, status: str, kind: str | None, limit: int, offset: int
) -> tuple[list[Any], int]:
    conditions = _anomalies(status, kind)
    rows = (
        await connection.execute(
            select(Anomaly.__table__)
            .where(*conditions)
            .order_by(Anomaly.last_seen_at.desc(), Anomaly.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = await connection.scalar(select(func.count()).select_from(Anomaly).where(*conditions))
    return list(rows), int(total or 0)


async def resolve_anomaly(
    session: AsyncSession, anomaly_id: int, *, resolved_by: uuid.UUID, resolution: str
) -> Any:
    """Mark an open anomaly resolved with the operator's explanation; None if unknown or resolved."""
    return (
        await session.execute(
            update(Anomaly)
            .where(Anomaly.id == anomaly_id, Anomaly.resolved_at.is_(None))
            .values(resolved_at=func.now(), resolved_by=resolved_by, resolution=resolution)
            .returning(*Anomaly.__table__.c)
        )
    ).one_or_none()
