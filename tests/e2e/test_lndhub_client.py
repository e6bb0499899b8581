"""A real, unmodified third-party LndHub client against our /lndhub: the npm package
``lightning-backends`` (bleskomat; its "lndhub" backend, the one Bleskomat ATMs and lnurl-node servers
use to talk to BlueWallet's LndHub and to LNbits' LndHub extension), installed from the registry at a
pinned version, driven by tests/e2e/clients/lightning_backends_driver.js against the real stack.

It logs in (/auth?type=auth) and then refreshes before every call (/auth?type=refresh_token), creates
an invoice that Bob pays (/addinvoice), polls it (/checkpayment), reads the balance (/balance), pays a
Bob invoice and reads the preimage from the Buffer (/payinvoice), and lists the payment (/gettxs),
once with JSON bodies and once with form bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import bolt11
from sqlalchemy import func, select

from shared.db.models import RefreshToken, User
from shared.ledger import ledger_totals
from tests.e2e.test_lightning_flow import wallet_stack
from tests.e2e.test_lndhub_flow import API_ENV
from tests.support import npm
from tests.support.cases import DbCase, wait_for

PACKAGE, VERSION = "lightning-backends", "1.7.0"
DRIVER = Path(__file__).with_name("clients") / "lightning_backends_driver.js"
COMMAND_TIMEOUT_S = 60


class Driver:
    """The node process running the library; ``run`` sends one command and returns its answer."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def run(self, op: str, **fields) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), COMMAND_TIMEOUT_S)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"the driver exited: {stderr.decode(errors='replace')}")
        return json.loads(line)

    async def ok(self, op: str, **fields):
        answer = await self.run(op, **fields)
        assert answer["ok"], (op, answer)
        return answer["result"]


@contextlib.asynccontextmanager
async def driver(library: Path, secret: str, content_type: str) -> AsyncIterator[Driver]:
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(DRIVER),
        env={
            "LNDHUB_SECRET": secret,
            "LNDHUB_CONTENT_TYPE": content_type,
            "LIGHTNING_BACKENDS": str(library),
        },
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Driver(process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


class ThirdPartyClientTest(DbCase):
    async def test_lightning_backends_lndhub_backend(self):
        try:
            library = await npm.ensure_package(PACKAGE, VERSION)
        except npm.Unavailable as exc:
            self.skipTest(str(exc))
        async with (
            wallet_stack(self, api_env=API_ENV) as (net, base_url),
            aiohttp.ClientSession(base_url) as http,
        ):
            for content_type in ("json", "form"):
                with self.subTest(content_type=content_type):
                    async with http.post("/lndhub/create", json={}) as r:
                        created = await r.json()
                    secret = f"lndhub://{created['login']}:{created['password']}@{base_url}/lndhub"
                    async with driver(library, secret, content_type) as client:
                        await self.scenario(net, client)
                    await self.assert_refreshed(created["login"])
        async with self.sessions() as session:
            self.assertEqual(await ledger_totals(session), (0, 0))

    async def scenario(self, net, client: Driver) -> None:
        added = await client.ok("addInvoice", msat=700_000, description="via lightning-backends")
        invoice = added["invoice"]
        payment_hash = bolt11.decode(invoice).payment_hash
        self.assertEqual(
            await client.ok("getInvoiceStatus", paymentHash=payment_hash),
            {"preimage": None, "settled": False},
        )
        paid = await net.cli("pay", "--node", "bob", invoice)
        self.assertEqual(paid["status"], "SUCCEEDED", paid)

        async def settled():
            return (await client.ok("getInvoiceStatus", paymentHash=payment_hash))["settled"]

        await wait_for(settled, timeout_s=30, interval_s=0.1, message="the library sees the invoice settled")
        self.assertEqual(await client.ok("getBalance"), 700_000)  # msat, from AvailableBalance

        bob = await net.cli("invoice", "--node", "bob", "--amt", "250", "--memo", "library pays bob")
        result = await client.ok("payInvoice", invoice=bob["payment_request"])
        self.assertEqual(hashlib.sha256(bytes.fromhex(result["preimage"])).hexdigest(), bob["r_hash"])
        txs = await client.ok("request", method="get", uri="/gettxs")
        self.assertEqual(
            [(tx["memo"], tx["payment_preimage"]) for tx in txs], [("library pays bob", result["preimage"])]
        )
        balance_msat = await client.ok("getBalance")
        self.assertLess(balance_msat, 450_000 + 1)
        self.assertGreater(balance_msat, 450_000 - 15_000)

        # the library raises on LndHub's error shape: not enough balance is code 2
        big = await net.cli("invoice", "--node", "bob", "--amt", "1000000")
        refused = await client.run("payInvoice", invoice=big["payment_request"])
        self.assertFalse(refused["ok"])
        self.assertIn('"code":2', refused["error"].replace(" ", ""))

    async def assert_refreshed(self, login: str) -> None:
        """The library re-authorised with its refresh token (rotation) rather than the password each time."""
        async with self.sessions() as session:
            user_id = await session.scalar(select(User.id).where(User.username == login))
            issued = await session.scalar(select(func.count()).where(RefreshToken.user_id == user_id))
            spent = await session.scalar(
                select(func.count()).where(RefreshToken.user_id == user_id, RefreshToken.used_at.is_not(None))
            )
            families = await session.scalar(
                select(func.count(func.distinct(RefreshToken.family_id))).where(
                    RefreshToken.user_id == user_id
                )
            )
        self.assertGreaterEqual(spent, 5)
        self.assertEqual(issued, spent + 1)
        self.assertEqual(families, 1)  # one login, then refreshes in the same session
