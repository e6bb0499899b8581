"""The admin's view of reconciliation: the latest run against the node, and the anomalies to explain.

The worker does the work (lightning_worker/reconciliation.py, every RECONCILE_EVERY_S) and stores each
run; this reads the latest. Anomalies are never deleted: an operator resolves one with an explanation
(what it was, what was done, e.g. an audited adjustment), which is kept with who resolved it and when.
"""

from __future__ import annotations

from typing import Any

from api_service.schemas.reconciliation import AnomalyListQuery, AnomalyOut, ReconciliationOut
from api_service.security import CurrentUser
from api_service.services.submission import WalletDeps
from api_service.validation import dump
from api_service.wire import sat
from shared.db.queries import reconciliation as queries
from shared.errors import NotFound

OPEN_ANOMALIES_SHOWN = 100


def anomaly_out(row: Any) -> dict[str, Any]:
    details = dict(row.details or {})
    return dump(
        AnomalyOut(
            id=row.id,
            kind=row.kind,
            message=str(details.pop("message", "")),
            payment_id=row.payment_id,
            invoice_id=row.invoice_id,
            account_id=row.account_id,
            payment_hash=row.payment_hash.hex() if row.payment_hash else None,
            details=details,
            occurrences=row.occurrences,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            resolution=row.resolution,
        )
    )


async def latest(deps: WalletDeps) -> dict[str, Any]:
    async with deps.reads.connect() as connection:
        run = await queries.latest_run(connection)
        open_rows, _ = await queries.list_anomalies(
            connection, status="open", kind=None, limit=OPEN_ANOMALIES_SHOWN, offset=0
        )
    if run is None:
        raise NotFound(
            "No reconciliation has run yet: the worker runs one every "
            f"{deps.settings.reconcile_every_s} s once it is connected to the node"
        )
    return dump(
        ReconciliationOut(
            status=run["status"],
            checked_at=run["checked_at"],
            liabilities_sat=sat(run["liabilities_msat"]),
            treasury_sat=sat(run["treasury_msat"]),
            node_local_balance_sat=sat(run["node_local_balance_msat"]),
            surplus_sat=run["surplus_msat"] // 1000,
            liabilities_msat=run["liabilities_msat"],
            treasury_msat=run["treasury_msat"],
            node_local_balance_msat=run["node_local_balance_msat"],
            surplus_msat=run["surplus_msat"],
            window_s=run["window_s"],
            duration_ms=run["duration_ms"],
            mismatches=run["mismatches"],
            anomalies=[anomaly_out(row) for row in open_rows],
        )
    )


async def list_anomalies(deps: WalletDeps, query: AnomalyListQuery) -> tuple[list[dict[str, Any]], int]:
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_anomalies(
            connection, status=query.status, kind=query.kind, limit=query.page_size, offset=query.offset
        )
    return [anomaly_out(row) for row in rows], total


async def resolve(deps: WalletDeps, admin: CurrentUser, anomaly_id: int, resolution: str) -> dict[str, Any]:
    async with deps.sessions() as session, session.begin():
        row = await queries.resolve_anomaly(session, anomaly_id, resolved_by=admin.id, resolution=resolution)
    if row is None:
        raise NotFound("No open anomaly with this id")
    return anomaly_out(row)
