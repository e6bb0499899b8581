"""LndHub and Lightning Addresses end to end over real HTTP against real processes: the API, one
lightning worker and lnd_simnet (Bob is the outside world, paying and being paid with the simnet CLI).
"""

from __future__ import annotations

import hashlib
import json

import aiohttp
import bolt11

from shared.ledger import ledger_totals
from tests.e2e.test_lightning_flow import wallet_stack
from tests.support.cases import DbCase, wait_for
from tests.support.simnet import Simnet

API_ENV = {"LNDHUB_ALLOW_CREATE": "true"}


def buffer_bytes(value: dict) -> bytes:
    assert value["type"] == "Buffer", value
    return bytes(value["data"])


class Hub:
    """An LndHub client the way apps talk: JSON or form bodies, ``Bearer <token>`` or the bare token."""

    def __init__(self, http: aiohttp.ClientSession, *, form: bool, bare: bool) -> None:
        self.http, self.form, self.bare = http, form, bare
        self.token: str | None = None

    async def call(
        self, method: str, path: str, body: dict | None = None, **params: str
    ) -> tuple[int, object]:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = self.token if self.bare else f"Bearer {self.token}"
        kwargs = {"data": body} if self.form else {"json": body}
        async with self.http.request(method, "/lndhub" + path, headers=headers, params=params, **kwargs) as r:
            answer = await r.json()
            assert r.status < 500, (method, path, r.status, answer)
            return r.status, answer

    async def ok(self, method: str, path: str, body: dict | None = None, **params: str):
        status, answer = await self.call(method, path, body, **params)
        assert status == 200, (method, path, status, answer)
        return answer


class LndHubFlowTest(DbCase):
    async def test_account_funded_by_bob_pays_bob_with_json_and_with_forms(self):
        async with (
            wallet_stack(self, api_env=API_ENV) as (net, base_url),
            aiohttp.ClientSession(base_url) as http,
        ):
            alice_pubkey = (await net.cli("info", "--node", "alice"))["identity_pubkey"]
            hubs = [Hub(http, form=False, bare=False), Hub(http, form=True, bare=True)]
            for hub in hubs:
                with self.subTest(form=hub.form, bare=hub.bare):
                    await self.flow(net, hub, alice_pubkey)
            await self.internal_payment(*hubs)
            await self.bad_inputs(Hub(http, form=False, bare=False))
        async with self.sessions() as session:
            self.assertEqual(await ledger_totals(session), (0, 0))

    async def flow(self, net: Simnet, hub: Hub, alice_pubkey: str) -> None:
        created = await hub.ok("POST", "/create", {"partnerid": "bluewallet", "accounttype": "common"})
        tokens = await hub.ok(
            "POST", "/auth", {"login": created["login"], "password": created["password"]}, type="auth"
        )
        hub.token = tokens["access_token"]
        self.assertEqual(await hub.ok("GET", "/balance"), {"BTC": {"AvailableBalance": 0}})

        # funded: Bob pays the account's invoice
        added = await hub.ok("POST", "/addinvoice", {"amt": "500", "memo": "from bob"})
        self.assertEqual(buffer_bytes(added["r_hash"]).hex(), added["payment_hash"])
        self.assertEqual(bolt11.decode(added["payment_request"]).payee, alice_pubkey)
        paid = await net.cli("pay", "--node", "bob", added["payment_request"])
        self.assertEqual(paid["status"], "SUCCEEDED", paid)

        async def listed_paid():
            invoices = await hub.ok("GET", "/getuserinvoices")
            return [i for i in invoices if i["payment_hash"] == added["payment_hash"] and i.get("ispaid")]

        [entry] = await wait_for(listed_paid, timeout_s=30, interval_s=0.05, message="invoice listed as paid")
        self.assertEqual(
            (entry["amt"], entry["description"], entry["type"]), (500, "from bob", "user_invoice")
        )
        self.assertEqual(await hub.ok("GET", "/balance"), {"BTC": {"AvailableBalance": 500}})
        self.assertEqual(await hub.ok("GET", f"/checkpayment/{added['payment_hash']}"), {"paid": True})

        # pays a Bob invoice, blocking until the outcome, with the preimage
        bob = await net.cli("invoice", "--node", "bob", "--amt", "200", "--memo", "to bob")
        sent = await hub.ok("POST", "/payinvoice", {"invoice": bob["payment_request"]})
        preimage = buffer_bytes(sent["payment_preimage"])
        self.assertEqual(hashlib.sha256(preimage).hexdigest(), bob["r_hash"])
        self.assertEqual(buffer_bytes(sent["payment_hash"]).hex(), bob["r_hash"])
        self.assertEqual((sent["payment_error"], sent["num_satoshis"]), ("", 200))
        fee_msat = int(sent["payment_route"]["total_fees_msat"])
        self.assertEqual(
            await hub.ok("GET", "/balance"), {"BTC": {"AvailableBalance": (300_000 - fee_msat) // 1000}}
        )
        [tx] = await hub.ok("GET", "/gettxs", limit="10", offset="0")
        self.assertEqual(
            (tx["type"], tx["value"], tx["memo"], tx["payment_preimage"]),
            ("paid_invoice", -(-(200_000 + fee_msat) // 1000), "to bob", preimage.hex()),
        )
        info = await hub.ok("GET", "/getinfo")
        self.assertEqual((info["identity_pubkey"], info["chains"][0]["network"]), (alice_pubkey, "regtest"))
        self.assertEqual(await hub.ok("GET", "/getpending"), [])

        # a refresh keeps the account working
        refreshed = await hub.ok(
            "POST", "/auth", {"refresh_token": tokens["refresh_token"]}, type="refresh_token"
        )
        hub.token = refreshed["access_token"]
        self.assertEqual(
            (await hub.ok("GET", "/balance"))["BTC"]["AvailableBalance"], (300_000 - fee_msat) // 1000
        )

    async def internal_payment(self, payer: Hub, payee: Hub) -> None:
        """One account of ours pays another's invoice: settled inside Postgres by the same payments
        service, no fee, and the payee sees it paid."""
        before = [(await hub.ok("GET", "/balance"))["BTC"]["AvailableBalance"] for hub in (payer, payee)]
        added = await payee.ok("POST", "/addinvoice", {"amt": 40, "memo": "between us"})
        sent = await payer.ok("POST", "/payinvoice", {"invoice": added["payment_request"]})
        self.assertEqual(
            hashlib.sha256(buffer_bytes(sent["payment_preimage"])).hexdigest(), added["payment_hash"]
        )
        self.assertEqual(sent["payment_route"]["total_fees_msat"], "0")
        self.assertEqual(await payee.ok("GET", f"/checkpayment/{added['payment_hash']}"), {"paid": True})
        after = [(await hub.ok("GET", "/balance"))["BTC"]["AvailableBalance"] for hub in (payer, payee)]
        self.assertEqual(after, [before[0] - 40, before[1] + 40])

    async def bad_inputs(self, hub: Hub) -> None:
        created = await hub.ok("POST", "/create", {})
        tokens = await hub.ok("POST", "/auth", {"login": created["login"], "password": created["password"]})
        cases = [
            ("GET", "/balance", None, 401, 1),
            ("POST", "/addinvoice", {"amt": "abc"}, 400, 8),
            ("POST", "/payinvoice", {"invoice": "lnbcrt1garbage"}, 400, 4),
            ("POST", "/payinvoice", {}, 400, 8),
            ("GET", "/nope", None, 404, 8),
        ]
        for method, path, body, http_status, code in cases:
            hub.token = None if code == 1 else tokens["access_token"]
            status, answer = await hub.call(method, path, body)
            self.assertEqual(
                (status, answer.get("code"), answer.get("error")), (http_status, code, True), answer
            )
        status, answer = await hub.call("POST", "/payinvoice", {"invoice": "lnbcrt" + "q" * 100})
        self.assertEqual((status, answer["code"]), (400, 4), answer)


class LightningAddressFlowTest(DbCase):
    async def test_a_lightning_address_paid_by_bob_credits_the_user(self):
        async with wallet_stack(self) as (net, base_url), aiohttp.ClientSession(base_url) as http:
            async with http.post(
                "/api/v1/auth/register", json={"username": "Carol", "password": "carol password"}
            ) as r:
                self.assertEqual(r.status, 201)
                token = (await r.json())["data"]["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get("/api/v1/users/me", headers=headers) as r:
                address = (await r.json())["data"]["lightningAddress"]
            host = base_url.removeprefix("http://")
            self.assertEqual(address, f"carol@{host}")

            # what a wallet does with carol@host: the pay request, then its callback
            name, domain = address.split("@")
            async with http.get(f"http://{domain}/.well-known/lnurlp/{name}") as r:
                self.assertEqual(r.status, 200)
                pay_request = await r.json()
            self.assertEqual(pay_request["tag"], "payRequest")
            self.assertIn(["text/identifier", address], json.loads(pay_request["metadata"]))
            self.assertTrue(pay_request["callback"].startswith(base_url + "/"))
            async with http.get(
                pay_request["callback"], params={"amount": "21500", "comment": "for lunch"}
            ) as r:
                self.assertEqual(r.status, 200, await r.text())
                answer = await r.json()
            decoded = bolt11.decode(answer["pr"])
            self.assertEqual(decoded.amount_msat, 21_500)
            self.assertEqual(
                decoded.description_hash, hashlib.sha256(pay_request["metadata"].encode()).hexdigest()
            )
            self.assertIsNone(decoded.description)
            async with http.get(pay_request["callback"], params={"amount": "999"}) as r:
                self.assertEqual((r.status, (await r.json())["status"]), (400, "ERROR"))

            paid = await net.cli("pay", "--node", "bob", answer["pr"])
            self.assertEqual(paid["status"], "SUCCEEDED", paid)

            async def credited():
                async with http.get("/api/v1/wallet/balance", headers=headers) as r:
                    return (await r.json())["data"]["balanceMsat"] == 21_500

            await wait_for(credited, timeout_s=30, interval_s=0.05, message="carol credited")
            async with http.get("/api/v1/invoices", headers=headers) as r:
                [item] = (await r.json())["data"]
            self.assertEqual(
                (item["state"], item["amountMsat"], item["memo"]), ("settled", 21_500, "for lunch")
            )
        async with self.sessions() as session:
            self.assertEqual(await ledger_totals(session), (0, 0))
