"""LNbits, the reference wallet: installed in its own venv, started against the same simnet alice.

LNbits 1.6.2 pins grpcio, protobuf, pydantic 1 and SQLAlchemy 1.4 versions that conflict with ours,
so it lives in ``bench/.lnbits-venv`` (gitignored), created on first run. Quirks handled here:
it looks for ``lnbits/static`` and ``lnbits/templates`` relative to its working folder (linked
into a temp folder), a wallet must have ``currency ""`` or each invoice fetches exchange rates,
its rate limit is lifted, and SIGTERM leaves a child on the port (``procs`` stops the group).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.loadgen import Exhausted, Op, OpError
from bench.procs import Child, Children, free_port, wait_http

VENV = Path(__file__).resolve().parent / ".lnbits-venv"
PACKAGES = ("lnbits==1.6.2", "bitstring<5")


def ensure_venv(log: Path) -> Path:
    """The venv's ``lnbits`` executable, installing LNbits first if the venv is missing."""
    exe = VENV / "bin" / "lnbits"
    if exe.exists():
        return exe
    print(f"bench: installing LNbits into {VENV} (first run only; log {log})", flush=True)
    with log.open("ab") as out:
        # A plain interpreter, not our .venv's: LNbits must not see our packages.
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True, stdout=out, stderr=subprocess.STDOUT)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--disable-pip-version-check", *PACKAGES],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return exe


def _package_dir() -> Path:
    found = sorted(VENV.glob("lib/python*/site-packages/lnbits"))
    if not found:
        raise RuntimeError(f"lnbits package not found under {VENV}")
    return found[0]


def prepare_work_dir(work_dir: Path) -> None:
    """LNbits resolves ``lnbits/static`` and ``lnbits/templates`` from its working folder: link them."""
    (work_dir / "lnbits").mkdir(parents=True, exist_ok=True)
    (work_dir / "data").mkdir(exist_ok=True)
    for name in ("static", "templates"):
        link = work_dir / "lnbits" / name
        if not link.exists():
            link.symlink_to(_package_dir() / name)


@dataclass
class LnbitsNode:
    url: str
    child: Child
    admin_key: str = ""
    invoice_key: str = ""
    wallet_class: str = ""


async def start(
    children: Children, work_dir: Path, wallet_class: str, lnd: dict[str, str] | None, log_dir: Path
) -> LnbitsNode:
    """Start LNbits (``LndWallet`` against ``lnd`` host/port/cert/macaroon, or ``FakeWallet``)."""
    exe = ensure_venv(log_dir / "lnbits-install.log")
    prepare_work_dir(work_dir)
    port = free_port()
    env = {
        "LNBITS_BACKEND_WALLET_CLASS": wallet_class,
        "LNBITS_ADMIN_UI": "false",
        "LNBITS_DATA_FOLDER": str(work_dir / "data"),
        "LNBITS_RATE_LIMIT_NO": "1000000",
        "LNBITS_RATE_LIMIT_UNIT": "second",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    if wallet_class == "LndWallet":
        assert lnd is not None
        env.update(
            {
                "LND_GRPC_ENDPOINT": lnd["host"],
                "LND_GRPC_PORT": lnd["port"],
                "LND_GRPC_CERT": lnd["cert"],
                "LND_GRPC_MACAROON": lnd["macaroon"],
            }
        )
    child = children.start(
        "lnbits", [str(exe), "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=work_dir
    )
    url = f"http://127.0.0.1:{port}"
    await wait_http(f"{url}/api/v1/health", child, timeout_s=90)
    return LnbitsNode(url=url, child=child, wallet_class=wallet_class)


async def create_wallet(session: aiohttp.ClientSession, node: LnbitsNode) -> None:
    async with session.post(f"{node.url}/api/v1/account", json={"name": "bench"}) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"LNbits create account: {resp.status} {body}")
    node.admin_key, node.invoice_key = body["adminkey"], body["inkey"]
    async with session.patch(
        f"{node.url}/api/v1/wallet", json={"currency": ""}, headers={"X-Api-Key": node.admin_key}
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"LNbits set currency: {resp.status} {await resp.text()}")


async def create_invoice(
    session: aiohttp.ClientSession, node: LnbitsNode, amount_sat: int, memo: str = "bench"
) -> str:
    async with session.post(
        f"{node.url}/api/v1/payments",
        json={"out": False, "amount": amount_sat, "memo": memo},
        headers={"X-Api-Key": node.invoice_key},
    ) as resp:
        if resp.status != 201:
            raise OpError(f"http {resp.status}", (await resp.text())[:200])
        body = await resp.json()
    bolt11 = body.get("bolt11") or body.get("payment_request")
    if not bolt11:
        raise OpError("no bolt11")
    return str(bolt11)


async def balance_msat(session: aiohttp.ClientSession, node: LnbitsNode) -> int:
    async with session.get(f"{node.url}/api/v1/wallet", headers={"X-Api-Key": node.invoice_key}) as resp:
        body = await resp.json()
    return int(body.get("balance", 0))


async def wait_balance(
    session: aiohttp.ClientSession, node: LnbitsNode, at_least_msat: int, timeout_s: float = 20.0
) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        current = await balance_msat(session, node)
        if current >= at_least_msat or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.1)


def create_invoice_op(session: aiohttp.ClientSession, node: LnbitsNode, amount_sat: int) -> Op:
    async def op(seq: int) -> None:
        await create_invoice(session, node, amount_sat)

    return op


def pay_op(session: aiohttp.ClientSession, node: LnbitsNode, bolt11s: list[str]) -> Op:
    """Pay one of the pre-made invoices per operation; success means LNbits reports the payment done."""

    async def op(seq: int) -> None:
        if not bolt11s:
            raise Exhausted
        bolt11 = bolt11s.pop()
        async with session.post(
            f"{node.url}/api/v1/payments",
            json={"out": True, "bolt11": bolt11},
            headers={"X-Api-Key": node.admin_key},
        ) as resp:
            text = await resp.text()
            if resp.status != 201:
                raise OpError(f"http {resp.status}", text[:200])
        body = await _json(text)
        status = body.get("status")
        if status not in (None, "success"):
            raise OpError(f"status {status}")

    return op


async def _json(text: str) -> dict[str, object]:
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OpError("bad json") from exc
    return value if isinstance(value, dict) else {}
