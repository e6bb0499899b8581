"""The LndHub adapter at /lndhub over the aiohttp test client, with the fake worker of the wallet tests
playing the lightning worker (same queue, rows and ledger as /api/v1)."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select, update

from shared import ledger
from shared.db.models import Invoice, Payment, User
from tests.api.test_wallet_support import balance_msat, insert_open_invoice, running_fake_worker
from tests.support.bolt11_factory import make_payment_request
from tests.support.cases import ApiCase
from tests.support.factories import DEFAULT_PASSWORD, create_user, fund_account

HUB = "/lndhub"


def buffer_bytes(value: dict) -> bytes:
    assert value["type"] == "Buffer", value
    return bytes(value["data"])


class LndHubCase(ApiCase):
    settings_overrides = {"invoice_wait_s": 2.0, "payment_wait_s": 2.0, "lndhub_allow_create": True}

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        bare: bool = False,
        json=None,
        form: dict | None = None,
        data=None,
        params=None,
        headers: dict | None = None,
    ) -> tuple[int, object]:
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = token if bare else f"Bearer {token}"
        response = await self.client.request(
            method,
            HUB + path,
            json=json,
            data=form if form is not None else data,
            params=params,
            headers=headers,
        )
        body = await response.json()
        self.assertEqual(response.content_type, "application/json")
        return response.status, body

    def assert_error(self, status: int, body, http_status: int, code: int) -> None:
        self.assertEqual(
            (status, body.get("code") if isinstance(body, dict) else body), (http_status, code), body
        )
        self.assertEqual(set(body), {"error", "code", "message"}, body)
        self.assertIs(body["error"], True)
        self.assertIsInstance(body["message"], str)

    async def account(self, balance_sat: int = 0) -> tuple[uuid.UUID, str]:
        """A user made by /create and logged in by /auth: (user id, access token)."""
        status, created = await self.call("POST", "/create", json={})
        self.assertEqual(status, 200, created)
        status, tokens = await self.call(
            "POST",
            "/auth",
            params={"type": "auth"},
            json={"login": created["login"], "password": created["password"]},
        )
        self.assertEqual(status, 200, tokens)
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.username == created["login"]))
        if balance_sat:
            async with self.sessions() as session, session.begin():
                await fund_account(session, await ledger.user_account_id(session, user.id), balance_sat)
        return user.id, tokens["access_token"]


class AccountTest(LndHubCase):
    async def test_create_makes_a_real_user_with_a_bcrypt_password(self):
        status, created = await self.call(
            "POST", "/create", json={"partnerid": "bluewallet", "accounttype": "common"}
        )
        self.assertEqual(status, 200, created)
        self.assertEqual(set(created), {"login", "password"})
        self.assertRegex(created["login"], r"^[0-9a-f]{20}$")
        self.assertRegex(created["password"], r"^[0-9a-f]{40}$")
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.username == created["login"]))
        self.assertEqual((user.role, user.is_active), ("user", True))
        self.assertTrue(user.password_hash.startswith("$2"))
        self.assertNotIn(created["password"], user.password_hash)
        self.assertEqual((await balance_msat(self, user.id)).balance_msat, 0)  # its ledger account exists

    async def test_auth_and_refresh_with_json_form_and_no_type(self):
        status, created = await self.call("POST", "/create", form={"partnerid": "bluewallet"})
        self.assertEqual(status, 200, created)
        login = {"login": created["login"], "password": created["password"]}
        status, tokens = await self.call("POST", "/auth", params={"type": "auth"}, json=login)
        self.assertEqual(status, 200, tokens)
        self.assertEqual(set(tokens), {"access_token", "refresh_token"})
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        self.assertEqual(claims["exp"] - claims["iat"], self.settings.lndhub_access_token_ttl)
        self.assertEqual(self.settings.lndhub_access_token_ttl, 2 * 24 * 3600)
        status, form_tokens = await self.call("POST", "/auth", form=login)  # no ?type: the body decides
        self.assertEqual(status, 200, form_tokens)
        status, refreshed = await self.call(
            "POST", "/auth", params={"type": "refresh_token"}, form={"refresh_token": tokens["refresh_token"]}
        )
        self.assertEqual(status, 200, refreshed)
        self.assertNotEqual(refreshed["refresh_token"], tokens["refresh_token"])
        status, body = await self.call("GET", "/balance", token=refreshed["access_token"])
        self.assertEqual((status, body), (200, {"BTC": {"AvailableBalance": 0}}))
        # the spent refresh token is refused, and its reuse revokes the session it belonged to
        status, body = await self.call(
            "POST", "/auth", params={"type": "refresh_token"}, json={"refresh_token": tokens["refresh_token"]}
        )
        self.assert_error(status, body, 401, 1)
        status, body = await self.call(
            "POST",
            "/auth",
            params={"type": "refresh_token"},
            json={"refresh_token": refreshed["refresh_token"]},
        )
        self.assert_error(status, body, 401, 1)

    async def test_existing_users_log_in_with_their_username(self):
        await create_user(self.sessions, username="Alice")
        status, tokens = await self.call(
            "POST", "/auth", json={"login": "alice", "password": DEFAULT_PASSWORD}
        )
        self.assertEqual(status, 200, tokens)
        status, body = await self.call("POST", "/auth", json={"login": "alice", "password": "wrong password"})
        self.assert_error(status, body, 401, 1)
        status, body = await self.call(
            "POST", "/auth", json={"login": "nobody", "password": "wrong password"}
        )
        self.assert_error(status, body, 401, 1)

    async def test_deactivation_cuts_a_live_token_at_once(self):
        user_id, token = await self.account()
        self.assertEqual((await self.call("GET", "/balance", token=token))[0], 200)
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == user_id).values(is_active=False))
        status, body = await self.call("GET", "/balance", token=token)
        self.assert_error(status, body, 401, 1)

    async def test_bearer_and_bare_tokens(self):
        _user_id, token = await self.account(balance_sat=42)
        for bare in (False, True):
            status, body = await self.call("GET", "/balance", token=token, bare=bare)
            self.assertEqual((status, body), (200, {"BTC": {"AvailableBalance": 42}}))


class CreateDisabledTest(LndHubCase):
    settings_overrides = {**LndHubCase.settings_overrides, "lndhub_allow_create": False}

    async def test_create_is_refused_and_makes_nothing(self):
        status, body = await self.call("POST", "/create", json={})
        self.assert_error(status, body, 403, 6)
        async with self.sessions() as session:
            self.assertEqual((await session.scalars(select(User))).all(), [])


class CreateRateLimitTest(LndHubCase):
    settings_overrides = {**LndHubCase.settings_overrides, "rate_limit_register_per_ip": 2}

    async def test_create_shares_the_registration_limit(self):
        response = await self.client.post(
            "/api/v1/auth/register", json={"username": "bob", "password": "x" * 12}
        )
        self.assertEqual(response.status, 201)
        self.assertEqual((await self.call("POST", "/create", json={}))[0], 200)
        response = await self.client.post(HUB + "/create", json={})
        self.assertEqual(response.status, 429)
        self.assertIn("Retry-After", response.headers)
        self.assert_error(response.status, await response.json(), 429, 6)


class InvoiceTest(LndHubCase):
    async def test_addinvoice_through_the_worker_and_getuserinvoices(self):
        user_id, token = await self.account()
        async with running_fake_worker(self):
            status, added = await self.call(
                "POST", "/addinvoice", token=token, json={"amt": "150", "memo": "coffee"}
            )
            self.assertEqual(status, 200, added)
            status, form_added = await self.call(
                "POST", "/addinvoice", token=token, bare=True, form={"amt": "7", "memo": ""}
            )
            self.assertEqual(status, 200, form_added)
        self.assertEqual(set(added), {"r_hash", "payment_request", "pay_req", "add_index", "payment_hash"})
        self.assertEqual(buffer_bytes(added["r_hash"]).hex(), added["payment_hash"])
        self.assertEqual(added["pay_req"], added["payment_request"])
        self.assertIsInstance(added["add_index"], str)
        async with self.sessions() as session:
            row = await session.scalar(
                select(Invoice).where(Invoice.payment_request == added["payment_request"])
            )
        self.assertEqual(
            (row.user_id, row.amount_msat, row.memo, row.expiry_s, row.state),
            (user_id, 150_000, "coffee", 86400, "open"),
        )
        status, listed = await self.call("GET", "/getuserinvoices", token=token)
        self.assertEqual(status, 200, listed)
        self.assertEqual([entry["amt"] for entry in listed], [150, 7])  # oldest first, as BlueWallet's
        entry = listed[0]
        self.assertEqual(
            (entry["type"], entry["ispaid"], entry["description"], entry["expire_time"]),
            ("user_invoice", False, "coffee", 86400),
        )
        self.assertEqual(buffer_bytes(entry["r_hash"]).hex(), entry["payment_hash"])
        self.assertEqual(entry["payment_hash"], added["payment_hash"])
        status, newest = await self.call("GET", "/getuserinvoices", token=token, params={"limit": "1"})
        self.assertEqual([entry["amt"] for entry in newest], [7])
        status, paid = await self.call("GET", f"/checkpayment/{added['payment_hash']}", token=token)
        self.assertEqual((status, paid), (200, {"paid": False}))

    async def test_description_hash_is_kept_on_the_row(self):
        _user_id, token = await self.account()
        wanted = hashlib.sha256(b"metadata").digest()
        async with running_fake_worker(self):
            status, added = await self.call(
                "POST",
                "/addinvoice",
                token=token,
                json={"amt": 5, "memo": "m", "description_hash": wanted.hex()},
            )
        self.assertEqual(status, 200, added)
        async with self.sessions() as session:
            row = await session.scalar(
                select(Invoice).where(Invoice.payment_request == added["payment_request"])
            )
        self.assertEqual(row.description_hash, wanted)

    async def test_without_a_worker_the_client_gets_code_7_and_the_row_waits(self):
        _user_id, token = await self.account()
        status, body = await self.call("POST", "/addinvoice", token=token, json={"amt": 5})
        self.assert_error(status, body, 503, 7)
        async with self.sessions() as session:
            self.assertEqual(
                [row.state for row in (await session.scalars(select(Invoice))).all()], ["pending"]
            )

    async def test_paid_and_stale_invoices(self):
        user_id, token = await self.account()
        paid_id, _pr, paid_hash = await insert_open_invoice(self, user_id, amount_sat=10)
        stale_id, _pr, _hash = await insert_open_invoice(self, user_id, amount_sat=20, state="expired")
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Invoice).where(Invoice.id == paid_id).values(state="settled", amount_paid_msat=12_000)
            )
            old = datetime.now(UTC) - timedelta(days=6)
            await session.execute(update(Invoice).where(Invoice.id == stale_id).values(created_at=old))
        status, listed = await self.call("GET", "/getuserinvoices", token=token)
        by_amount = {entry["amt"]: entry for entry in listed}
        self.assertEqual(set(by_amount), {12, 20})  # a paid invoice shows what was paid
        self.assertIs(by_amount[12]["ispaid"], True)
        self.assertNotIn("ispaid", by_amount[20])  # unpaid and older than five days: left out
        status, paid = await self.call("GET", f"/checkpayment/{paid_hash.hex()}", token=token)
        self.assertEqual((status, paid), (200, {"paid": True}))
        # someone else's invoice is not found, as an unknown one
        _other, other_token = await self.account()
        status, body = await self.call("GET", f"/checkpayment/{paid_hash.hex()}", token=other_token)
        self.assert_error(status, body, 404, 8)


class PaymentTest(LndHubCase):
    async def test_payinvoice_pays_through_the_payments_service(self):
        user_id, token = await self.account(balance_sat=5000)
        bob_pr, bob_hash = make_payment_request(amount_msat=1_000_000, description="from bob")
        async with running_fake_worker(self):
            status, paid = await self.call(
                "POST", "/payinvoice", token=token, json={"invoice": bob_pr, "amount": 0}
            )
        self.assertEqual(status, 200, paid)
        preimage = buffer_bytes(paid["payment_preimage"])
        self.assertEqual(len(preimage), 32)
        self.assertEqual(buffer_bytes(paid["payment_hash"]), bob_hash)
        self.assertEqual(paid["payment_error"], "")
        self.assertEqual(
            (paid["num_satoshis"], paid["description"], paid["pay_req"]), (1000, "from bob", bob_pr)
        )
        route = paid["payment_route"]
        self.assertEqual(
            (route["total_amt"], route["total_fees"], route["total_fees_msat"]), (1001, 1, "1000")
        )
        async with self.sessions() as session:
            payment = await session.scalar(select(Payment).where(Payment.payment_hash == bob_hash))
        self.assertEqual((payment.user_id, payment.state, payment.preimage), (user_id, "succeeded", preimage))
        status, body = await self.call("GET", "/balance", token=token)
        self.assertEqual(body, {"BTC": {"AvailableBalance": 5000 - 1000 - 1}})
        status, txs = await self.call("GET", "/gettxs", token=token, params={"limit": "10", "offset": "0"})
        self.assertEqual(status, 200, txs)
        self.assertEqual(len(txs), 1)
        tx = txs[0]
        self.assertEqual(
            (tx["type"], tx["value"], tx["fee"], tx["memo"], tx["payment_preimage"]),
            ("paid_invoice", 1001, 1, "from bob", preimage.hex()),
        )
        self.assertEqual(buffer_bytes(tx["payment_hash"]), bob_hash)
        self.assertAlmostEqual(tx["timestamp"], time.time(), delta=60)
        # paying it again: already paid, code 10, nothing moves
        status, body = await self.call("POST", "/payinvoice", token=token, form={"invoice": bob_pr})
        self.assert_error(status, body, 409, 10)
        self.assertEqual(
            (await self.call("GET", "/balance", token=token))[1]["BTC"]["AvailableBalance"], 3999
        )

    async def test_zero_amount_invoice_takes_the_amount(self):
        _user_id, token = await self.account(balance_sat=500)
        bob_pr, _hash = make_payment_request(amount_msat=None)
        status, body = await self.call("POST", "/payinvoice", token=token, json={"invoice": bob_pr})
        self.assert_error(status, body, 400, 8)
        async with running_fake_worker(self):
            status, paid = await self.call(
                "POST", "/payinvoice", token=token, form={"invoice": bob_pr, "amount": "120"}
            )
        self.assertEqual((status, paid.get("num_satoshis")), (200, 120), paid)

    async def test_failed_payment_is_code_10_and_releases_the_hold(self):
        _user_id, token = await self.account(balance_sat=5000)
        bob_pr, _hash = make_payment_request(amount_msat=1_000_000)
        async with running_fake_worker(self, payment_outcome="failed"):
            status, body = await self.call("POST", "/payinvoice", token=token, json={"invoice": bob_pr})
        self.assert_error(status, body, 400, 10)
        self.assertEqual(
            (await self.call("GET", "/balance", token=token))[1], {"BTC": {"AvailableBalance": 5000}}
        )
        self.assertEqual((await self.call("GET", "/gettxs", token=token))[1], [])

    async def test_in_transit_is_code_9_and_listed_in_transition(self):
        _user_id, token = await self.account(balance_sat=5000)
        bob_pr, bob_hash = make_payment_request(amount_msat=1_000_000)
        status, body = await self.call(
            "POST", "/payinvoice", token=token, json={"invoice": bob_pr}
        )  # no worker
        self.assert_error(status, body, 409, 9)
        status, again = await self.call("POST", "/payinvoice", token=token, json={"invoice": bob_pr})
        self.assert_error(status, again, 409, 9)
        status, txs = await self.call("GET", "/gettxs", token=token)
        self.assertEqual(
            [(tx["memo"], tx["payment_preimage"]) for tx in txs], [("Payment in transition", None)]
        )
        self.assertEqual(txs[0]["value"], 1000 + 10)  # amount + the fee reserve still held
        self.assertEqual(buffer_bytes(txs[0]["payment_hash"]), bob_hash)
        self.assertEqual(
            (await self.call("GET", "/balance", token=token))[1], {"BTC": {"AvailableBalance": 3990}}
        )

    async def test_refusals_with_their_codes(self):
        _user_id, token = await self.account(balance_sat=100)
        expired, _ = make_payment_request(amount_msat=1000, timestamp=int(time.time()) - 7200, expiry_s=60)
        testnet, _ = make_payment_request(amount_msat=1000, currency="tb")
        big, _ = make_payment_request(amount_msat=1_000_000)
        cases = [
            ({"invoice": "lnbcrt1garbage"}, 400, 4),
            ({"invoice": testnet}, 400, 4),
            ({"invoice": expired}, 422, 4),
            ({"invoice": big}, 422, 2),
        ]
        for body, http_status, code in cases:
            with self.subTest(code=code, http_status=http_status):
                status, answer = await self.call("POST", "/payinvoice", token=token, json=body)
                self.assert_error(status, answer, http_status, code)
        self.assertEqual(
            (await self.call("GET", "/balance", token=token))[1], {"BTC": {"AvailableBalance": 100}}
        )


class ReadsTest(LndHubCase):
    async def test_empty_lists_and_decode(self):
        _user_id, token = await self.account()
        for path in ("/getpending", "/getbtc", "/gettxs", "/getuserinvoices"):
            self.assertEqual(await self.call("GET", path, token=token), (200, []), path)
        pr, payment_hash = make_payment_request(amount_msat=1_234_000, description="decode me", expiry_s=900)
        status, decoded = await self.call("GET", "/decodeinvoice", token=token, params={"invoice": pr})
        self.assertEqual(status, 200, decoded)
        self.assertEqual(
            (decoded["payment_hash"], decoded["num_satoshis"], decoded["num_msat"], decoded["expiry"]),
            (payment_hash.hex(), "1234", "1234000", "900"),
        )
        self.assertEqual((decoded["description"], decoded["cltv_expiry"]), ("decode me", "80"))
        self.assertRegex(decoded["destination"], r"^0[23][0-9a-f]{64}$")


class BadInputTest(LndHubCase):
    """Every bad input gets LndHub's error shape with the right code, a 4xx, and changes nothing."""

    async def test_sweep(self):
        _user_id, token = await self.account(balance_sat=100)
        bob_pr, _ = make_payment_request(amount_msat=1000)
        auth = {"token": token}
        cases = [
            # (method, path, kwargs, http status, code)
            ("GET", "/balance", {}, 401, 1),
            ("GET", "/balance", {"token": "not-a-token"}, 401, 1),
            ("GET", "/gettxs", {"token": token + "x"}, 401, 1),
            ("POST", "/addinvoice", {"json": {"amt": 1}}, 401, 1),
            ("POST", "/payinvoice", {"json": {"invoice": bob_pr}, "token": ""}, 401, 1),
            ("POST", "/addinvoice", {**auth, "json": {}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 0}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": -5}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": "abc"}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": True}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1.5}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": None}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 10**30}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 10**9}}, 400, 8),  # over MAX_INVOICE_SAT
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1, "memo": "x" * 640}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1, "memo": "a\x00b"}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1, "memo": 5}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1, "description_hash": "zz"}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": {"amt": 1, "description_hash": "ab" * 31}}, 400, 8),
            ("POST", "/addinvoice", {**auth, "json": [1, 2]}, 400, 8),
            (
                "POST",
                "/addinvoice",
                {**auth, "data": b"{not json", "headers": {"Content-Type": "application/json"}},
                400,
                8,
            ),
            (
                "POST",
                "/addinvoice",
                {**auth, "data": b"\xff\xfe", "headers": {"Content-Type": "text/plain"}},
                400,
                8,
            ),
            (
                "POST",
                "/addinvoice",
                {
                    **auth,
                    "data": b"amt=1&amt=2",
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
                400,
                8,
            ),
            ("POST", "/payinvoice", {**auth, "json": {}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": ""}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": 12}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": "x" * 8000}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": bob_pr, "amount": "lots"}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": bob_pr, "amount": -1}}, 400, 8),
            ("POST", "/payinvoice", {**auth, "json": {"invoice": "hello"}}, 400, 4),
            ("POST", "/auth", {"json": {}}, 400, 8),
            ("POST", "/auth", {"json": {"login": "a"}}, 400, 8),
            ("POST", "/auth", {"json": {"login": 5, "password": 6}}, 400, 8),
            ("POST", "/auth", {"params": {"type": "bogus"}, "json": {"login": "a", "password": "b"}}, 400, 8),
            ("POST", "/auth", {"params": {"type": "refresh_token"}, "json": {"login": "a"}}, 400, 8),
            (
                "POST",
                "/auth",
                {"params": {"type": "refresh_token"}, "json": {"refresh_token": "nope"}},
                401,
                1,
            ),
            ("POST", "/create", {"json": {"partnerid": 5}}, 400, 8),
            ("POST", "/create", {"json": {"accounttype": ["x"]}}, 400, 8),
            ("GET", "/gettxs", {**auth, "params": {"limit": "-1"}}, 400, 8),
            ("GET", "/gettxs", {**auth, "params": {"offset": "abc"}}, 400, 8),
            ("GET", "/getuserinvoices", {**auth, "params": {"limit": "1001"}}, 400, 8),
            ("GET", "/checkpayment/xyz", auth, 400, 8),
            ("GET", "/checkpayment/" + "00" * 32, auth, 404, 8),
            ("GET", "/decodeinvoice", auth, 400, 8),
            ("GET", "/decodeinvoice", {**auth, "params": {"invoice": "lnbc1nope"}}, 400, 4),
            ("GET", "/nope", auth, 404, 8),
            ("GET", "/addinvoice", auth, 405, 8),
            ("DELETE", "/balance", auth, 405, 8),
            (
                "POST",
                "/addinvoice",
                {
                    **auth,
                    "data": b"x" * (self.settings.max_body_bytes + 1),
                    "headers": {"Content-Type": "application/json"},
                },
                413,
                8,
            ),
        ]
        for method, path, kwargs, http_status, code in cases:
            with self.subTest(method=method, path=path, kwargs=str(kwargs)[:80]):
                status, body = await self.call(method, path, **kwargs)
                self.assert_error(status, body, http_status, code)
        async with self.sessions() as session:
            self.assertEqual((await session.scalars(select(Invoice))).all(), [])
            self.assertEqual((await session.scalars(select(Payment))).all(), [])
