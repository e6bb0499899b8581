"""The database belongs to one LND node: its identity pubkey and network, written on first contact.

Crediting the invoices of another node against this ledger must be impossible (a wrong
LND_GRPC_HOST, a restored backup pointed at a fresh node, a second deployment sharing a database).
So before the worker uses a node for anything, it compares the node's GetInfo with the row in
``node_identity``: none yet → this node is recorded; the same → go on; another → the worker refuses
to run, naming both pubkeys. ``LND_ALLOW_NODE_CHANGE=1`` records the new node instead (an
operator's deliberate move to a new node), logged at WARNING.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.lightning.types import NodeInfo

log = logging.getLogger(__name__)


class NodeIdentityMismatch(Exception):
    """The node is not the one this database belongs to."""


async def verify_node_identity(
    sessions: async_sessionmaker[AsyncSession], info: NodeInfo, *, allow_change: bool
) -> None:
    """Record the node on first contact; raise NodeIdentityMismatch for another node."""
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO node_identity (id, identity_pubkey, network) VALUES (1, :pubkey, :network)"
                " ON CONFLICT (id) DO NOTHING"
            ),
            {"pubkey": info.identity_pubkey, "network": info.network},
        )
        row = (
            await session.execute(
                text("SELECT identity_pubkey, network FROM node_identity WHERE id = 1 FOR UPDATE")
            )
        ).one()
        if (row.identity_pubkey, row.network) == (info.identity_pubkey, info.network):
            return
        described = (
            f"this database belongs to LND node {row.identity_pubkey} ({row.network}), "
            f"but the worker is connected to {info.identity_pubkey} ({info.network})"
        )
        if not allow_change:
            raise NodeIdentityMismatch(
                f"{described}; refusing to run. Point LND_GRPC_HOST at the right node, or start once with "
                f"LND_ALLOW_NODE_CHANGE=1 to record the new node."
            )
        await session.execute(
            text(
                "UPDATE node_identity SET identity_pubkey = :pubkey, network = :network, recorded_at = now()"
                " WHERE id = 1"
            ),
            {"pubkey": info.identity_pubkey, "network": info.network},
        )
        log.warning("%s; LND_ALLOW_NODE_CHANGE=1: recorded the new node", described)
