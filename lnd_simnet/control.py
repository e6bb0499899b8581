"""A small control service next to LND's (JSON over gRPC at /lnd_simnet.Control/*, admin macaroon):
release held payments and set per-node failure knobs. Not part of LND's API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import grpc

from lnd_simnet.errors import RpcFailure
from lnd_simnet.models import REASONS
from lnd_simnet.network import Network
from lnd_simnet.node import Node

if TYPE_CHECKING:
    from shared.lightning.grpc_client import GrpcLightningClient

SERVICE = "lnd_simnet.Control"


def _dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def control_handler(network: Network, node: Node) -> grpc.GenericRpcHandler:
    async def release(request: dict, context):
        try:
            outcome = request.get("outcome", "succeed")
            if outcome not in ("succeed", "fail"):
                raise RpcFailure("outcome must be succeed or fail", grpc.StatusCode.INVALID_ARGUMENT)
            network.release(
                bytes.fromhex(request["payment_hash"]), outcome, request.get("reason", "no_route")
            )
        except RpcFailure as exc:
            await context.abort(exc.code, exc.text)
        return {"released": request["payment_hash"], "outcome": outcome}

    async def configure(request: dict, context):
        fail = request.get("fail")
        if fail is not None and fail not in REASONS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown failure reason {fail!r}")
        node.config.fail = fail
        node.config.hold = bool(request.get("hold", False))
        node.config.delay_ms = request.get("delay_ms")
        return {
            "node": node.name,
            "fail": node.config.fail,
            "hold": node.config.hold,
            "delay_ms": node.config.delay_ms,
        }

    def method(fn):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=json.loads, response_serializer=_dumps
        )

    return grpc.method_handlers_generic_handler(
        SERVICE, {"Release": method(release), "Configure": method(configure)}
    )


async def call_control(
    client: GrpcLightningClient, name: str, payload: dict, timeout_s: float = 10.0
) -> dict:
    """Client side: call a control method over ``client``'s channel with its macaroon (the channel is
    TLS only; every call carries ``client.call_metadata``, as the client's own calls do)."""
    call = client.channel.unary_unary(
        f"/{SERVICE}/{name}", request_serializer=_dumps, response_deserializer=json.loads
    )
    return await call(payload, timeout=timeout_s, metadata=client.call_metadata)
