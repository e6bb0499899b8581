"""The soak's seeded mixed workload: operations started at a steady rate, bounded in concurrency.

Every answer is kept as what it promises: a 2xx becomes an *expectation* the audit checks against
the database and the node once everything has settled (an invoice Bob paid must be credited, a
payment answered ``succeeded`` must stay so, an adjustment must exist...). What has no answer (the
API was killed mid-request, a 503 during a fault) promises nothing; the node-side reconciliation
still covers it. A 500 is kept as an incident, to be explained by a fault or reported.

Two API processes sit behind this client as behind a load balancer: each request goes to one
chosen by the seeded generator and, when that one refuses the connection, to the other.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc

from bench.soak.audit import node_payments
from bench.soak.receiver import Receiver
from bench.soak.stack import Stack
from lnd_simnet.control import call_control
from shared import bolt11
from shared.lightning.grpc_client import GrpcLightningClient
from shared.lightning.types import PaymentStatus

SEED_USERS = 6
SEED_FUNDING_SAT = 40_000
MAX_USERS = 80
HTTP_TIMEOUT_S = 30
BOB_PAY_TIMEOUT_S = 40
HOLD_RELEASE_WITHIN_S = (2.0, 8.0)
RELEASE_GIVE_UP_S = 120
# kind -> weight in the mix
MIX = {
    "register": 3,
    "login": 3,
    "invoice_paid_by_bob": 12,
    "pay_bob": 9,
    "pay_bob_failing": 3,
    "pay_bob_held": 2,
    "pay_internal": 6,
    "idempotent_repeat": 4,
    "lndhub_invoice": 3,
    "lndhub_pay": 3,
    "lightning_address": 4,
    "admin_adjustment": 2,
    "read": 10,
}
FAIL_MARKERS = ("simnet:no_route", "simnet:fail=incorrect_payment_details", "simnet:insufficient_balance")


@dataclass
class User:
    id: str
    username: str
    password: str
    token: str
    lndhub_token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_subject(token: str) -> str:
    """The user id in a JWT we were just given (read, not verified: the API verifies it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


@dataclass
class Workload:
    stack: Stack
    receiver: Receiver
    rng: random.Random
    rate_per_s: float
    concurrency: int
    operations: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)  # "kind status"
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    expectations: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    admin: User | None = None
    releases: list[asyncio.Task] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None
    _bob: GrpcLightningClient | None = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    # -- plumbing ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Workload:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in [*self._tasks, *self.releases]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self.releases, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._bob is not None:
            await self._bob.close()

    def bob(self) -> GrpcLightningClient:
        if self._bob is None:
            assert self.stack.simnet is not None
            self._bob = self.stack.simnet.client("bob")
        return self._bob

    async def reset_bob(self) -> None:
        """After a simnet restart: a fresh channel rather than waiting for the old one's backoff."""
        bob, self._bob = self._bob, None
        if bob is not None:
            with contextlib.suppress(Exception):
                await bob.close()

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: dict | None = None,
        params: dict | None = None,
        base: str | None = None,
    ) -> tuple[int | None, Any]:
        """One request; (None, None) when no API answered. Latency is kept for 2xx answers."""
        assert self._http is not None
        urls = self.stack.api_urls
        first = self.rng.randrange(len(urls))
        order = [base] if base else [urls[first], *urls[:first], *urls[first + 1 :]]
        for url in order:
            started = time.monotonic()
            try:
                async with self._http.request(
                    method, url + path, headers=headers, json=body, params=params
                ) as response:
                    status = response.status
                    text = await response.text()
            except (aiohttp.ClientConnectionError, ConnectionError) as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    continue  # refused: this API is down, ask the other one
                self.outcomes[f"{kind} no-answer"] += 1
                return None, None
            except TimeoutError:
                self.outcomes[f"{kind} timeout"] += 1
                return None, None
            elapsed_ms = (time.monotonic() - started) * 1000
            self.outcomes[f"{kind} {status}"] += 1
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = text
            if 200 <= status < 300:
                self.latency_ms[kind].append(elapsed_ms)
            elif status >= 500 and status != 503:
                self.incidents.append(
                    {"at": time.time(), "kind": kind, "path": path, "status": status, "body": data}
                )
            return status, data
        self.outcomes[f"{kind} refused"] += 1
        return None, None

    def expect(self, what: str, **details: Any) -> None:
        self.expectations.append({"what": what, "at": time.time(), **details})

    # -- setup ------------------------------------------------------------------------------------

    async def setup(self) -> None:
        """An admin with a funded treasury, and a few users funded by Bob."""
        status, data = await self.call(
            "setup",
            "POST",
            "/api/v1/auth/register",
            body={
                "username": "soak_admin",
                "password": "soak admin password",
                "adminKey": self.stack.admin_key,
            },
        )
        if status != 201:
            raise RuntimeError(f"could not register the admin: {status} {data}")
        token = data["data"]["accessToken"]
        self.admin = User(token_subject(token), "soak_admin", "soak admin password", token)
        local_sat = (await self.bob_free_alice_local_sat()) // 2
        status, data = await self.call(
            "setup",
            "POST",
            "/api/v1/admin/treasury/deposits",
            headers=self.admin.headers,
            body={"amountSat": local_sat, "reason": "soak: operator float on alice"},
        )
        if status != 201:
            raise RuntimeError(f"could not fund the treasury: {status} {data}")
        self.expect("adjustment", adjustmentId=data["data"]["id"])
        for _ in range(SEED_USERS):
            user = await self.register("setup")
            if user is None:
                raise RuntimeError("could not register a seed user")
            if not await self.invoice_paid_by_bob(user, SEED_FUNDING_SAT, kind="setup"):
                raise RuntimeError("could not fund a seed user")

    async def bob_free_alice_local_sat(self) -> int:
        assert self.stack.simnet is not None
        alice = self.stack.simnet.client("alice")
        try:
            return (await alice.channel_balance()).local_msat // 1000
        finally:
            await alice.close()

    async def register(self, kind: str = "register") -> User | None:
        username = f"soak_{uuid.uuid4().hex[:12]}"
        password = "pw-" + uuid.uuid4().hex
        status, data = await self.call(
            kind, "POST", "/api/v1/auth/register", body={"username": username, "password": password}
        )
        if status != 201:
            return None
        token = data["data"]["accessToken"]
        user = User(token_subject(token), username, password, token)
        self.expect("user", userId=user.id)
        status, data = await self.call(kind, "GET", "/api/v1/webhooks/secret", headers=user.headers)
        if status != 200:
            return None  # exists (expected above), but no webhooks for it without its secret
        self.receiver.secrets[user.id] = data["data"]["secret"]
        if len(self.users) < MAX_USERS:
            self.users.append(user)
        return user

    # -- the run ----------------------------------------------------------------------------------

    async def run(self, duration_s: float) -> None:
        """Start one operation every 1/rate s for ``duration_s`` (skipped when ``concurrency`` run)."""
        interval_s = 1.0 / self.rate_per_s
        kinds, weights = list(MIX), list(MIX.values())
        deadline = time.monotonic() + duration_s
        next_at = time.monotonic()
        while next_at < deadline:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval_s
            kind = self.rng.choices(kinds, weights)[0]
            if len(self._tasks) >= self.concurrency:
                self.operations["skipped (busy)"] += 1
                continue
            self.operations[kind] += 1
            task = asyncio.create_task(self._guarded(kind, getattr(self, "op_" + kind)()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self.drain()

    async def drain(self, timeout_s: float = 90.0) -> None:
        """Wait for the operations started and the hold releases (bounded)."""
        pending = [*self._tasks, *self.releases]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _guarded(self, kind: str, op: Awaitable[Any]) -> None:
        try:
            await op
        except (aiohttp.ClientError, grpc.RpcError, TimeoutError, OSError) as exc:
            self.outcomes[f"{kind} error {type(exc).__name__}"] += 1
        except Exception as exc:  # a bug in the soak itself: counted and kept, never hidden
            self.violations.append({"check": "workload_crash", "kind": kind, "error": repr(exc)})

    def pick_users(self, count: int) -> list[User] | None:
        if len(self.users) < count:
            return None
        return self.rng.sample(self.users, count)

    def amount_sat(self) -> int:
        return self.rng.choice((1, 10, 21, 100, 250, 500, 1000, 2000))

    # -- money helpers ----------------------------------------------------------------------------

    async def bob_pays(self, payment_request: str) -> str | None:
        """Bob pays; the final status name at the node, or None if Bob's node did not answer."""
        try:
            async with asyncio.timeout(BOB_PAY_TIMEOUT_S):
                last = None
                async for update in self.bob().send_payment(
                    payment_request=payment_request, fee_limit_msat=100_000, timeout_s=30
                ):
                    last = update
                return last.status.name if last else None
        except (grpc.RpcError, TimeoutError, OSError, Exception) as exc:  # the node may be restarting
            self.outcomes[f"bob_pay error {type(exc).__name__}"] += 1
            await self.reset_bob()
            return None

    async def bob_invoice(self, amount_sat: int, memo: str) -> tuple[str, str] | None:
        try:
            added = await self.bob().add_invoice(
                value_msat=amount_sat * 1000, memo=memo, expiry_s=3600, preimage=os.urandom(32)
            )
        except Exception as exc:  # the node may be restarting
            self.outcomes[f"bob_invoice error {type(exc).__name__}"] += 1
            await self.reset_bob()
            return None
        return added.payment_request, added.payment_hash.hex()

    async def open_invoice(self, kind: str, user: User, amount_sat: int, memo: str) -> dict | None:
        status, data = await self.call(
            kind,
            "POST",
            "/api/v1/invoices",
            headers=user.headers,
            body={"amountSat": amount_sat, "memo": memo, "webhookUrl": self.receiver.url(user.id)},
        )
        if status not in (201, 202):
            return None
        invoice = data["data"]
        self.expect("invoice", invoiceId=invoice["id"], userId=user.id)
        for _ in range(40):
            if invoice.get("state") == "open" and invoice.get("paymentRequest"):
                return invoice
            if invoice.get("state") not in (None, "pending"):
                return None
            await asyncio.sleep(0.25)
            status, data = await self.call(
                "read", "GET", f"/api/v1/invoices/{invoice['id']}", headers=user.headers
            )
            if status == 200:
                invoice = data["data"]
        return None

    async def invoice_paid_by_bob(
        self, user: User, amount_sat: int, kind: str = "invoice_paid_by_bob"
    ) -> bool:
        invoice = await self.open_invoice(kind, user, amount_sat, "soak: from bob")
        if invoice is None:
            return False
        outcome = await self.bob_pays(invoice["paymentRequest"])
        if outcome == "SUCCEEDED":
            self.expect("invoice_settled", invoiceId=invoice["id"], userId=user.id, amountSat=amount_sat)
        return outcome == "SUCCEEDED"

    async def pay(self, kind: str, user: User, payment_request: str, key: str | None = None) -> dict | None:
        headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
        status, data = await self.call(
            kind,
            "POST",
            "/api/v1/payments",
            headers=headers,
            body={"paymentRequest": payment_request, "webhookUrl": self.receiver.url(user.id)},
        )
        if status not in (200, 202):
            return None
        payment = data["data"]
        self.expect(
            "payment", paymentId=payment["id"], userId=user.id, answered=status, status=payment["status"]
        )
        return payment

    # -- operations -------------------------------------------------------------------------------

    async def op_register(self) -> None:
        await self.register()

    async def op_login(self) -> None:
        users = self.pick_users(1)
        if not users:
            return
        user = users[0]
        status, data = await self.call(
            "login", "POST", "/api/v1/auth/login", body={"username": user.username, "password": user.password}
        )
        if status == 200:
            user.token = data["data"]["accessToken"]

    async def op_invoice_paid_by_bob(self) -> None:
        users = self.pick_users(1)
        if users:
            await self.invoice_paid_by_bob(users[0], self.amount_sat())

    async def _pay_bob(self, kind: str, memo: str) -> dict | None:
        users = self.pick_users(1)
        made = await self.bob_invoice(self.amount_sat(), memo) if users else None
        if made is None:
            return None
        payment = await self.pay(kind, users[0], made[0])
        if payment is not None:
            payment["_hash"] = made[1]
            payment["_user"] = users[0]
        return payment

    async def op_pay_bob(self) -> None:
        await self._pay_bob("pay_bob", "soak: to bob")

    async def op_pay_bob_failing(self) -> None:
        payment = await self._pay_bob("pay_bob_failing", "soak: to bob " + self.rng.choice(FAIL_MARKERS))
        if payment is not None:
            self.expect("payment_fails", paymentId=payment["id"])

    async def op_pay_bob_held(self) -> None:
        payment = await self._pay_bob("pay_bob_held", "soak: to bob simnet:hold")
        if payment is None:
            return
        outcome = self.rng.choice(("succeed", "succeed", "fail"))
        delay_s = self.rng.uniform(*HOLD_RELEASE_WITHIN_S)
        self.releases.append(asyncio.create_task(self.release_later(payment, outcome, delay_s)))

    async def release_later(self, payment: dict, outcome: str, delay_s: float) -> None:
        """Release the held HTLC once the worker has sent it (retried through faults, bounded)."""
        await asyncio.sleep(delay_s)
        deadline = time.monotonic() + RELEASE_GIVE_UP_S
        payload = {"payment_hash": payment["_hash"], "outcome": outcome, "reason": "no_route"}
        while time.monotonic() < deadline:
            try:
                await call_control(self.bob(), "Release", payload, timeout_s=5)
                self.outcomes[f"hold released {outcome}"] += 1
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    await self.reset_bob()
                status, data = await self.call(
                    "read", "GET", f"/api/v1/payments/{payment['id']}", headers=payment["_user"].headers
                )
                if status == 200 and data["data"]["status"] in ("succeeded", "failed"):
                    self.outcomes["hold final before release"] += 1
                    return
            await asyncio.sleep(0.5)
        self.outcomes["hold never released"] += 1

    async def release_orphan_holds(self, alice: GrpcLightningClient, every_s: float = 2.0) -> None:
        """Until cancelled (the quiesce runs it): release, to succeed, every payment of alice's still
        held by a ``simnet:hold`` invoice (the simnet holds it on the sender's side).

        A held payment whose POST got no answer (its API process killed mid-request, a 503) has no id
        the load knows, so no ``release_later`` follows it, and it would stay in flight at the node for
        ever; a real receiver settles or fails a held HTLC in the end, so the soak does it here."""
        while True:
            try:
                held = [p for p in await node_payments(alice) if p.status is PaymentStatus.IN_FLIGHT]
            except grpc.RpcError:
                held = []
            for payment in held:
                payload = {"payment_hash": payment.payment_hash.hex(), "outcome": "succeed"}
                try:
                    await call_control(self.bob(), "Release", payload, timeout_s=5)
                    self.outcomes["hold released at quiesce"] += 1
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:  # NOT_FOUND: in flight, not held
                        await self.reset_bob()
            await asyncio.sleep(every_s)

    async def op_pay_internal(self) -> None:
        users = self.pick_users(2)
        if not users:
            return
        payer, payee = users
        amount_sat = self.amount_sat()
        invoice = await self.open_invoice("pay_internal", payee, amount_sat, "soak: between users")
        if invoice is None:
            return
        payment = await self.pay("pay_internal", payer, invoice["paymentRequest"])
        if payment is not None and payment["status"] == "succeeded":
            self.expect("invoice_settled", invoiceId=invoice["id"], userId=payee.id, amountSat=amount_sat)

    async def op_idempotent_repeat(self) -> None:
        users = self.pick_users(1)
        made = await self.bob_invoice(self.amount_sat(), "soak: to bob, twice") if users else None
        if made is None:
            return
        key = "soak-" + uuid.uuid4().hex
        first = await self.pay("idempotent_repeat", users[0], made[0], key)
        second = await self.pay("idempotent_repeat", users[0], made[0], key)
        if first and second and first["id"] != second["id"]:
            self.violations.append(
                {"check": "idempotency_replay", "key": key, "paymentIds": [first["id"], second["id"]]}
            )

    async def lndhub_token(self, user: User) -> str | None:
        if user.lndhub_token is None:
            status, data = await self.call(
                "lndhub",
                "POST",
                "/lndhub/auth",
                body={"login": user.username, "password": user.password},
                params={"type": "auth"},
            )
            if status != 200:
                return None
            user.lndhub_token = data["access_token"]
        return user.lndhub_token

    async def op_lndhub_invoice(self) -> None:
        users = self.pick_users(1)
        token = await self.lndhub_token(users[0]) if users else None
        if token is None:
            return
        amount_sat = self.amount_sat()
        status, data = await self.call(
            "lndhub_invoice",
            "POST",
            "/lndhub/addinvoice",
            headers={"Authorization": f"Bearer {token}"},
            body={"amt": str(amount_sat), "memo": "soak: lndhub"},
        )
        if status != 200:
            return
        self.expect("invoice_hash", paymentHash=data["payment_hash"], userId=users[0].id)
        if await self.bob_pays(data["payment_request"]) == "SUCCEEDED":
            self.expect("invoice_hash_settled", paymentHash=data["payment_hash"], amountSat=amount_sat)

    async def op_lndhub_pay(self) -> None:
        users = self.pick_users(1)
        token = await self.lndhub_token(users[0]) if users else None
        made = await self.bob_invoice(self.amount_sat(), "soak: lndhub to bob") if token else None
        if made is None:
            return
        status, data = await self.call(
            "lndhub_pay",
            "POST",
            "/lndhub/payinvoice",
            headers={"Authorization": f"Bearer {token}"},
            body={"invoice": made[0]},
        )
        if status == 200 and not data.get("payment_error"):
            self.expect("payment_hash_succeeded", paymentHash=made[1], userId=users[0].id)

    async def op_lightning_address(self) -> None:
        users = self.pick_users(1)
        if not users:
            return
        user = users[0]
        status, data = await self.call("lightning_address", "GET", f"/.well-known/lnurlp/{user.username}")
        if status != 200:
            return
        amount_msat = self.amount_sat() * 1000
        callback_path = "/" + data["callback"].split("/", 3)[3]
        status, data = await self.call(
            "lightning_address", "GET", callback_path, params={"amount": str(amount_msat), "comment": "soak"}
        )
        if status != 200:
            return
        if await self.bob_pays(data["pr"]) == "SUCCEEDED":
            hash_hex = _payment_hash_of(data["pr"])
            self.expect("invoice_hash_settled", paymentHash=hash_hex, amountSat=amount_msat // 1000)

    async def op_admin_adjustment(self) -> None:
        users = self.pick_users(1)
        if not users or self.admin is None:
            return
        direction = self.rng.choice(("credit", "credit", "debit"))
        status, data = await self.call(
            "admin_adjustment",
            "POST",
            "/api/v1/admin/adjustments",
            headers={**self.admin.headers, "Idempotency-Key": "soak-adj-" + uuid.uuid4().hex},
            body={
                "userId": users[0].id,
                "amountSat": self.rng.choice((1, 5, 50)),
                "direction": direction,
                "reason": f"soak: {direction}",
            },
        )
        if status == 201:
            self.expect("adjustment", adjustmentId=data["data"]["id"])

    async def op_read(self) -> None:
        users = self.pick_users(1)
        if not users:
            return
        path = self.rng.choice(
            ("/api/v1/wallet/balance", "/api/v1/invoices?page=1&pageSize=20", "/api/v1/users/me")
        )
        await self.call("read", "GET", path, headers=users[0].headers)


def _payment_hash_of(payment_request: str) -> str:
    return bolt11.decode(payment_request).payment_hash.hex()
