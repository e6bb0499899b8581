"""Our HTTP API as the bench sees it: a thin client over the DESIGN §3 contract, and the operations.

Policy for asynchronous answers: POST /invoices must answer 201 with ``state: "open"`` and POST
/payments 200 with ``status: "succeeded"``. A 202 (the job did not finish within the server's
INVOICE_WAIT_S / PAYMENT_WAIT_S) or any other state is counted as an error, not followed: the
contract promises the final answer in the response for a healthy system, and following would hide
exactly the slowness this benchmark exists to show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.loadgen import Exhausted, Op, OpError

PASSWORD = "bench-password-0123456789"  # noqa: S105 - throwaway users of a throwaway database
API = "/api/v1"


@dataclass
class User:
    username: str
    token: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class MadeInvoice:
    """An open invoice of ours, kept to be paid later (internal payments, settlement)."""

    payee: User
    invoice_id: str
    payment_request: str


class Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        expect: int | tuple[int, ...],
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; returns ``data`` of the envelope, raises OpError("http <status>") otherwise."""
        expected = (expect,) if isinstance(expect, int) else expect
        async with self.session.request(method, self.base_url + path, json=json, headers=headers) as resp:
            body = await resp.read()
            if resp.status not in expected:
                code = ""
                try:
                    code = (await resp.json(content_type=None))["error"]["code"]
                except Exception:  # any non-envelope body: the status alone identifies it
                    code = ""
                raise OpError(
                    f"http {resp.status}{' ' + code if code else ''}", body[:200].decode(errors="replace")
                )
            if not body:
                return None
            envelope = await resp.json(content_type=None)
        if not isinstance(envelope, dict) or envelope.get("success") is not True:
            raise OpError("bad envelope", str(envelope)[:200])
        return envelope.get("data")

    async def register(self, username: str, admin_key: str | None = None) -> User:
        payload: dict[str, Any] = {"username": username, "password": PASSWORD}
        if admin_key:
            payload["adminKey"] = admin_key
        data = await self.call("POST", f"{API}/auth/register", 201, json=payload)
        return User(username, data["accessToken"], str(data["user"]["id"]))

    async def login(self, username: str) -> str:
        data = await self.call(
            "POST", f"{API}/auth/login", 200, json={"username": username, "password": PASSWORD}
        )
        return str(data["accessToken"])

    async def create_invoice(self, user: User, amount_sat: int, memo: str = "bench") -> dict[str, Any]:
        data = await self.call(
            "POST",
            f"{API}/invoices",
            (201, 202),
            json={"amountSat": amount_sat, "memo": memo},
            headers=user.headers,
        )
        if data.get("state") != "open":
            raise OpError(f"invoice {data.get('state')}")
        return data

    async def pay(self, user: User, payment_request: str, from_treasury: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {"paymentRequest": payment_request}
        if from_treasury:
            payload["fromTreasury"] = True
        data = await self.call("POST", f"{API}/payments", (200, 201, 202), json=payload, headers=user.headers)
        if data.get("status") != "succeeded":
            raise OpError(f"payment {data.get('status')}", str(data.get("failureReason") or ""))
        return data

    async def list_invoices(self, user: User) -> list[Any]:
        data = await self.call("GET", f"{API}/invoices?page=1&pageSize=20", 200, headers=user.headers)
        return list(data)

    async def balance_sat(self, user: User) -> int:
        data = await self.call("GET", f"{API}/wallet/balance", 200, headers=user.headers)
        return int(data.get("availableSat", data.get("balanceSat", 0)))

    async def wait_balance(self, user: User, at_least_sat: int, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            current = await self.balance_sat(user)
            if current >= at_least_sat or time.monotonic() > deadline:
                return current
            await asyncio.sleep(0.1)

    async def healthz(self) -> None:
        async with self.session.get(self.base_url + "/healthz") as resp:
            await resp.read()
            if resp.status != 200:
                raise OpError(f"http {resp.status}")


def create_invoice_op(api: Api, users: list[User], amount_sat: int, made: list[MadeInvoice]) -> Op:
    """POST /invoices, expecting ``open``; keeps each invoice so later cells can pay it."""

    async def op(seq: int) -> None:
        user = users[seq % len(users)]
        data = await api.create_invoice(user, amount_sat)
        made.append(MadeInvoice(user, str(data["id"]), str(data["paymentRequest"])))

    return op


def pay_external_op(api: Api, users: list[User], bolt11s: list[str]) -> Op:
    async def op(seq: int) -> None:
        if not bolt11s:
            raise Exhausted
        await api.pay(users[seq % len(users)], bolt11s.pop())

    return op


def pay_internal_op(api: Api, users: list[User], invoices: list[MadeInvoice]) -> Op:
    """Pay one of our own users' open invoices from another user (settled inside Postgres)."""

    async def op(seq: int) -> None:
        if not invoices:
            raise Exhausted
        made = invoices.pop()
        payer = next(u for u in _rotate(users, seq) if u.user_id != made.payee.user_id)
        await api.pay(payer, made.payment_request)

    return op


def _rotate(users: list[User], start: int) -> list[User]:
    k = start % len(users)
    return users[k:] + users[:k]


def reads_op(api: Api, users: list[User]) -> Op:
    async def op(seq: int) -> None:
        page = await api.list_invoices(users[seq % len(users)])
        if not page:
            raise OpError("empty page")

    return op


def login_op(api: Api, users: list[User]) -> Op:
    async def op(seq: int) -> None:
        await api.login(users[seq % len(users)].username)

    return op


def healthz_op(api: Api) -> Op:
    async def op(seq: int) -> None:
        await api.healthz()

    return op


def plain_get_op(
    session: aiohttp.ClientSession, url: str, check: Callable[[bytes], bool] | None = None
) -> Op:
    """GET ``url`` expecting 200 (the bare aiohttp ceiling)."""

    async def op(seq: int) -> None:
        async with session.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise OpError(f"http {resp.status}")
        if check is not None and not check(body):
            raise OpError("bad body")

    return op
