"""lncli-like commands that talk gRPC (TLS + macaroon) to a running simnet and print JSON.

They use shared.lightning's GrpcLightningClient, exactly as the wallet does.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import sys
from pathlib import Path

from lnd_simnet.control import call_control
from lnd_simnet.files import read_network_file
from shared.errors import LightningError
from shared.lightning.grpc_client import GrpcLightningClient


def client_for(data_dir: Path, node: str, timeout_s: float = 10.0) -> GrpcLightningClient:
    info = read_network_file(data_dir)["nodes"][node]
    return GrpcLightningClient.from_paths(
        info["rpcserver"], info["tls_cert"], info["admin_macaroon"], timeout_s
    )


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.name
    return value


async def cmd_invoice(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    added = await client.add_invoice(
        value_msat=args.amt * 1000, memo=args.memo, expiry_s=args.expiry, preimage=os.urandom(32)
    )
    return {
        "r_hash": added.payment_hash.hex(),
        "payment_request": added.payment_request,
        "add_index": added.add_index,
        "payment_addr": added.payment_addr.hex(),
    }


async def cmd_pay(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    fee_limit_sat = args.fee_limit_sat
    if fee_limit_sat is None:  # like lncli: a percentage of the amount, with a floor
        decoded = await client.decode_pay_req(args.bolt11)
        amount_sat = (decoded.amount_msat // 1000) or (args.amt or 0)
        fee_limit_sat = max(10, amount_sat * 5 // 100)
    last = None
    async for update in client.send_payment(
        payment_request=args.bolt11,
        fee_limit_msat=fee_limit_sat * 1000,
        timeout_s=args.timeout,
        amount_msat=args.amt * 1000 if args.amt else None,
        no_inflight_updates=not args.no_wait,
    ):
        last = update
        if args.no_wait:
            break
    assert last is not None
    return {
        "payment_hash": last.payment_hash.hex(),
        "status": last.status.name,
        "fee_sat": last.fee_msat // 1000,
        "fee_msat": last.fee_msat,
        "value_sat": last.value_msat // 1000,
        "payment_preimage": last.preimage.hex() if last.preimage else "0" * 64,
        "failure_reason": f"FAILURE_REASON_{last.failure_reason}"
        if last.failure_reason
        else "FAILURE_REASON_NONE",
        "payment_index": last.payment_index,
    }


async def cmd_info(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    return _jsonable(await client.get_info())


async def cmd_balance(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    channel = await client.channel_balance()
    wallet = await client.wallet_balance()
    return {
        "local_balance_sat": channel.local_msat // 1000,
        "remote_balance_sat": channel.remote_msat // 1000,
        "channel": _jsonable(channel),
        "wallet": _jsonable(wallet),
    }


async def cmd_release(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    payload = {"payment_hash": args.payment_hash, "outcome": args.outcome, "reason": args.reason}
    return await call_control(client, "Release", payload)


async def cmd_configure(client: GrpcLightningClient, args: argparse.Namespace) -> dict:
    payload = {"fail": args.fail, "hold": args.hold, "delay_ms": args.delay_ms}
    return await call_control(client, "Configure", payload)


async def run_client_command(args: argparse.Namespace) -> int:
    client = client_for(Path(args.dir), args.node)
    try:
        result = await args.handler(client, args)
    except LightningError as exc:
        print(json.dumps({"error": type(exc).__name__, "code": exc.grpc_code, "message": exc.message}))
        return 1
    except Exception as exc:  # control calls raise raw gRPC errors
        details = exc.details() if hasattr(exc, "details") else str(exc)
        print(json.dumps({"error": type(exc).__name__, "message": details}))
        return 1
    finally:
        await client.close()
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    return 0


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dir", default=".run/simnet")
        p.add_argument("--node", default="alice", choices=("alice", "bob"))
        p.set_defaults(handler=handler)
        return p

    p = command("invoice", cmd_invoice, "create an invoice (AddInvoice)")
    p.add_argument("--amt", type=int, default=0, help="amount in sat (0: any amount)")
    p.add_argument("--memo", default="")
    p.add_argument("--expiry", type=int, default=0, help="seconds (0: LND's default 86400)")
    p = command("pay", cmd_pay, "pay a BOLT11 invoice (SendPaymentV2)")
    p.add_argument("bolt11")
    p.add_argument("--fee-limit-sat", type=int, default=None)
    p.add_argument("--timeout", type=int, default=60)
    p.add_argument("--amt", type=int, default=0, help="sat, for zero-amount invoices")
    p.add_argument("--no-wait", action="store_true", help="print the first update instead of the final one")
    command("info", cmd_info, "GetInfo")
    command("balance", cmd_balance, "ChannelBalance and WalletBalance")
    p = command("release", cmd_release, "resolve a payment held by simnet:hold")
    p.add_argument("payment_hash")
    p.add_argument("--outcome", choices=("succeed", "fail"), default="succeed")
    p.add_argument("--reason", default="no_route", help="failure reason when --outcome fail")
    p = command("configure", cmd_configure, "per-node knobs for outgoing payments")
    p.add_argument(
        "--fail", default=None, help="no_route|insufficient_balance|timeout|error|incorrect_payment_details"
    )
    p.add_argument("--hold", action="store_true")
    p.add_argument("--delay-ms", type=int, default=None)
