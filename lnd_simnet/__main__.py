"""python -m lnd_simnet serve|invoice|pay|info|balance|release|configure (see lnd_simnet/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from lnd_simnet.cli import add_client_commands, run_client_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lnd_simnet", description="LND stand-in speaking LND's gRPC"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the network (alice and bob joined by a channel)")
    p.add_argument("--dir", default=".run/simnet")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--tls-extra-domain",
        action="append",
        default=[],
        help="extra DNS name in the nodes' TLS certificates (like LND's tlsextradomain); repeatable",
    )
    p.add_argument(
        "--alice-port", type=int, default=10009, help="0 picks a free port (see <dir>/network.json)"
    )
    p.add_argument("--bob-port", type=int, default=10010)
    p.add_argument("--capacity-sat", type=int, default=10_000_000)
    p.add_argument("--alice-local-sat", type=int, default=5_000_000)
    p.add_argument("--fee-base-msat", type=int, default=1000)
    p.add_argument("--fee-ppm", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=20)
    p.add_argument("--wallet-balance-sat", type=int, default=100_000_000)
    p.add_argument("--log-level", default="INFO")
    add_client_commands(sub)
    return parser


def _serve(args: argparse.Namespace) -> None:
    from lnd_simnet.network import Settings
    from lnd_simnet.server import serve

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.alice_local_sat > args.capacity_sat:
        raise SystemExit("--alice-local-sat exceeds --capacity-sat")
    settings = Settings(
        capacity_sat=args.capacity_sat,
        alice_local_sat=args.alice_local_sat,
        fee_base_msat=args.fee_base_msat,
        fee_ppm=args.fee_ppm,
        delay_ms=args.delay_ms,
        wallet_balance_sat=args.wallet_balance_sat,
    )
    ports = {"alice": args.alice_port, "bob": args.bob_port}
    asyncio.run(serve(Path(args.dir), args.host, ports, settings, tuple(args.tls_extra_domain)))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
        return 0
    return asyncio.run(run_client_command(args))


if __name__ == "__main__":
    sys.exit(main())
