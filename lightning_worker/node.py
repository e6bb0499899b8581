"""Job ``node_info``: what GET /admin/node shows (the API never talks to LND itself)."""

from __future__ import annotations

from typing import Any

from lightning_worker.context import get_context
from lightning_worker.retry import retry_transient


@retry_transient
async def node_info(ctx: dict[str, Any]) -> dict[str, Any]:
    """GetInfo + ChannelBalance as a small JSON-able dict (no secrets)."""
    lightning = get_context(ctx).lightning
    info = await lightning.get_info()
    balance = await lightning.channel_balance()
    return {
        "identity_pubkey": info.identity_pubkey,
        "alias": info.alias,
        "network": info.network,
        "block_height": info.block_height,
        "version": info.version,
        "synced_to_chain": info.synced_to_chain,
        "num_active_channels": info.num_active_channels,
        "channel_balance": {
            "local_msat": balance.local_msat,
            "remote_msat": balance.remote_msat,
            "unsettled_local_msat": balance.unsettled_local_msat,
            "pending_open_local_msat": balance.pending_open_local_msat,
        },
    }
