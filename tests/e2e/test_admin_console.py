"""The admin console in a real browser, against real processes: lnd_simnet, one worker and the API.

Playwright (the PyPI package) drives Debian's chromium by ``executable_path`` (``playwright install``
cannot download here), headless, one browser with one context in a fresh profile. ``make test``
installs chromium as root when apt is available and then sets LW_REQUIRE_BROWSER=1, so a failed
install fails here; elsewhere a missing chromium skips with the install command.

Every request the page makes is checked to stay on 127.0.0.1 (anything else is aborted and
reported), and the console is watched for Content-Security-Policy violations and script errors.
Each view is saved as a screenshot under ``.run/screenshots/`` (the README's come from there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import unittest
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import ConsoleMessage, Page, Route, async_playwright, expect

from tests.e2e.test_lightning_flow import Api, wallet_stack
from tests.support.cases import DbCase, wait_for
from tests.support.env import REPO_ROOT
from tests.support.factories import (
    DEFAULT_PASSWORD,
    auth_headers,
    create_user,
    fund_treasury,
    insert_webhook_delivery,
)
from tests.support.webhook_receiver import WebhookReceiver

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get update && apt-get install -y chromium"
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
SCREENSHOTS = REPO_ROOT / ".run" / "screenshots"
# Reported to the console from inside the page, so violations on any document are seen.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`securitypolicyviolation ${event.violatedDirective} ${event.blockedURI}`);
});
"""
TREASURY_SAT = 2_000_000
ALICE_SAT = 50_000
DIGITS = re.compile(r"^[0-9]+$")
AUTO_REFRESH_MS = 5000  # admin.js: the jobs and payments views reload this often
# Chrome logs each 4xx answer to a fetch; the test asks for a non-admin's 403s and a spoiled token's 401.
EXPECTED_LOAD_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of 40[13] ")


def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    message = f"{CHROMIUM} is not installed; install it with: {INSTALL_HINT}"
    if os.environ.get("LW_REQUIRE_BROWSER") == "1":
        raise AssertionError(message)
    raise unittest.SkipTest(message)


@dataclass
class Watch:
    """What the page did: every request URL, requests that tried to leave, console and script errors."""

    origin: str
    urls: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        url = route.request.url
        self.urls.append(url)
        parts = urlsplit(url)
        if parts.hostname != "127.0.0.1" or f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.outside.append(url)
            await route.abort()
        else:
            await route.continue_()

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(message.text)

    def csp_reports(self) -> list[str]:
        return [m for m in self.console if "securitypolicyviolation" in m or "Content Security Policy" in m]

    def unexpected_console(self) -> list[str]:
        return [m for m in self.console if not EXPECTED_LOAD_ERROR.match(m)]


@contextlib.asynccontextmanager
async def browser(base_url: str) -> AsyncIterator[tuple[Page, Watch]]:
    executable = chromium_path()
    watch = Watch(origin=base_url)
    async with async_playwright() as playwright:
        with tempfile.TemporaryDirectory(prefix="lw-chromium-") as profile:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                args=LAUNCH_FLAGS,
                headless=True,
                viewport={"width": 1280, "height": 640},
            )
            try:
                expect.set_options(timeout=TIMEOUT_MS)
                context.set_default_timeout(TIMEOUT_MS)
                context.set_default_navigation_timeout(TIMEOUT_MS)
                await context.route("**/*", watch.route)
                await context.add_init_script(CSP_LISTENER)
                page = context.pages[0] if context.pages else await context.new_page()
                page.on("console", watch.on_console)
                page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
                yield page, watch
            finally:
                await context.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class AdminConsoleTest(DbCase):
    settings_overrides = {"webhook_allowed_networks": "127.0.0.0/8"}

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.receiver = await WebhookReceiver(default=200).start()

    async def asyncTearDown(self) -> None:
        await self.receiver.close()
        await super().asyncTearDown()

    async def plant_failed_delivery(self, user_id: uuid.UUID, invoice_id: str) -> int:
        """A delivery that ran out of attempts a day ago, to the test's receiver."""
        created = datetime.now(UTC) - timedelta(hours=27)
        return await insert_webhook_delivery(
            self.sessions,
            user_id,
            uuid.UUID(invoice_id),
            url=self.receiver.url("/shop/hook"),
            created_at=created,
            last_attempt_at=created + timedelta(hours=26),
            payload={"type": "invoice.settled", "timestamp": created.isoformat(), "data": {}},
        )

    async def hold_payments(self, api: Api, net, alice: dict, count: int) -> list[str]:
        """Payments of Alice's to Bob that the simnet keeps in flight (simnet:hold), oldest first."""
        bob = net.client("bob")
        ids = []
        for n in range(count):
            added = await bob.add_invoice(
                value_msat=(1000 + n) * 1000, memo="simnet:hold", expiry_s=3600, preimage=os.urandom(32)
            )
            status, body = await api.call(
                "POST", "/api/v1/payments", alice, {"paymentRequest": added.payment_request}
            )
            self.assertEqual(status, 202, body)
            ids.append(body["data"]["id"])
        for payment_id in ids:
            await api.wait_state(f"/api/v1/payments/{payment_id}", alice, "status", {"in_flight"})
        return ids

    async def test_an_admin_runs_the_console_and_a_non_admin_is_refused(self):
        sessions = self.sessions
        admin_id = await create_user(sessions, username="admin", role="admin")
        alice_id = await create_user(sessions, username="alice", balance_sat=ALICE_SAT)
        await create_user(sessions, username="alina", balance_sat=700)
        await create_user(sessions, username="bob", balance_sat=1200)
        await create_user(sessions, username="carol")
        dave_id = await create_user(sessions, username="dave")
        async with sessions() as session, session.begin():
            await fund_treasury(session, TREASURY_SAT)
        admin = auth_headers(self.settings, admin_id, "admin")
        alice = auth_headers(self.settings, alice_id)

        async with (
            wallet_stack(
                self, api_env={"PAYMENT_WAIT_S": "0"}, worker_overrides={"RECONCILE_EVERY_S": "3600"}
            ) as (net, base_url),
            aiohttp.ClientSession() as http,
        ):
            api = Api(http, base_url)
            status, body = await api.call("POST", "/api/v1/invoices", alice, {"amountSat": 321})
            self.assertIn(status, (201, 202), body)
            delivery_id = await self.plant_failed_delivery(alice_id, body["data"]["id"])
            in_flight = await self.hold_payments(api, net, alice, 2)
            await wait_for(
                lambda: self.ok(api, "/api/v1/admin/reconciliation", admin), timeout_s=30, message="a run"
            )

            async with browser(base_url) as (page, watch):
                await self.non_admin_is_refused(page, base_url)
                await self.admin_signs_in(page)
                await self.overview_shows_the_apis_figures(page, api, admin)
                await self.users_found_adjusted_and_deactivated(page, api, admin, alice, dave_id)
                await self.payments_in_flight_oldest_first(page, api, admin, in_flight)
                await self.jobs_refresh_by_themselves(page)
                await self.failed_delivery_redelivered(page, api, admin, delivery_id)
                await self.tokens_are_refreshed(page)
                await self.signing_out_forgets_the_tokens(page, api)
                self.assertEqual(watch.csp_reports(), [])
                self.assertEqual(watch.page_errors, [])
                self.assertEqual(watch.unexpected_console(), [])
                await self.violations_would_be_seen(page, watch)
            self.assertEqual(watch.outside, [])
            self.assertGreater(len(watch.urls), 20)
            self.assertFalse([url for url in watch.urls if "eyJ" in url or "token" in url.lower()])

    # ---- steps ---------------------------------------------------------------------------------

    async def non_admin_is_refused(self, page: Page, base_url: str) -> None:
        await page.clock.install()  # real time, until the jobs step jumps ahead
        await page.goto(f"{base_url}/admin")
        await expect(page.locator("#view-login")).to_be_visible()
        await screenshot(page, "login")
        await page.fill("#login-username", "carol")
        await page.fill("#login-password", DEFAULT_PASSWORD)
        async with page.expect_response("**/api/v1/auth/logout") as signed_out:
            await page.click("#login-form button[type=submit]")
        self.assertEqual((await signed_out.value).status, 204)
        refused = page.locator("#view-forbidden")
        await expect(refused).to_be_visible()
        await expect(refused).to_contain_text("carol is not an administrator")
        await expect(refused).to_contain_text("403 FORBIDDEN")
        await expect(page.locator("#nav")).to_be_hidden()
        await page.wait_for_function("sessionStorage.length === 0")
        await screenshot(page, "not-allowed")
        await page.click("#forbidden-again")

    async def admin_signs_in(self, page: Page) -> None:
        await expect(page.locator("#view-login")).to_be_visible()
        await page.fill("#login-username", "admin")
        await page.fill("#login-password", DEFAULT_PASSWORD)
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#view-overview")).to_be_visible()
        await expect(page.locator("#whoami")).to_have_text("Signed in as admin")
        stored = json.loads(await page.evaluate("sessionStorage.getItem('lw-admin-session')"))
        self.assertEqual(stored["username"], "admin")
        self.assertNotIn("password", json.dumps(stored).lower())
        self.assertNotIn("token", page.url.lower())

    async def overview_shows_the_apis_figures(self, page: Page, api: Api, admin: dict) -> None:
        view = page.locator("#view-overview")
        # The node's answer comes through a worker job: the last card to fill.
        await expect(view.locator('[data-field="node-local"]')).to_have_attribute("data-value", DIGITS)
        treasury = await self.data(api, "/api/v1/admin/treasury", admin)
        reconciliation = await self.data(api, "/api/v1/admin/reconciliation", admin)
        node_info = await self.data(api, "/api/v1/admin/node", admin)
        self.assertEqual(treasury["balanceSat"], TREASURY_SAT)
        expected = {
            "treasury-balance": treasury["balanceSat"],
            "treasury-available": treasury["availableSat"],
            "liabilities": reconciliation["liabilitiesSat"],
            "recon-surplus": reconciliation["surplusSat"],
            "node-local": node_info["channelBalance"]["localSat"],
        }
        for name, value in expected.items():
            field_ = view.locator(f'[data-field="{name}"]')
            await expect(field_).to_have_attribute("data-value", str(value))
            await expect(field_).to_have_text(f"{value:,} sat")
        status = view.locator('[data-field="recon-status"]')
        await expect(status).to_have_attribute("data-value", reconciliation["status"])
        self.assertEqual(reconciliation["anomalies"], [])
        await expect(view.locator("#anomalies")).to_have_text("none")
        await screenshot(page, "overview")

    async def users_found_adjusted_and_deactivated(
        self, page: Page, api: Api, admin: dict, alice: dict, dave_id: uuid.UUID
    ) -> None:
        await page.click('[data-nav="users"]')
        view = page.locator("#view-users")
        await expect(view).to_be_visible()
        await page.fill("#user-q", "ali")
        await page.click("#user-search button[type=submit]")
        listed = await self.data(api, "/api/v1/users?q=ali", admin)
        self.assertEqual(sorted(user["username"] for user in listed), ["alice", "alina"])
        rows = view.locator("#users tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text(listed[0]["username"])
        await expect(rows.nth(1)).to_contain_text(listed[1]["username"])

        before = await self.data(api, "/api/v1/wallet/balance", alice)
        reason = "Goodwill credit, support ticket 4711 <b>not bold</b>"
        await rows.filter(has_text="alice").locator('[data-action="adjust"]').click()
        await page.fill("#adjust-amount", "1234")
        await page.select_option("#adjust-direction", "credit")
        await page.fill("#adjust-reason", reason)
        await page.click("#adjust-form button[type=submit]")
        await expect(page.locator("#flash")).to_have_text(f"Credited 1,234 sat to alice: {reason}")
        await expect(view.locator("#adjustments tbody tr").first).to_contain_text(reason)  # as text
        after = await self.data(api, "/api/v1/wallet/balance", alice)
        self.assertEqual(after["balanceSat"] - before["balanceSat"], 1234)
        [adjustment] = await self.data(api, "/api/v1/admin/adjustments", admin)
        self.assertEqual(
            (adjustment["username"], adjustment["direction"], adjustment["reason"]),
            ("alice", "credit", reason),
        )
        self.assertEqual(adjustment["createdByUsername"], "admin")
        treasury = await self.data(api, "/api/v1/admin/treasury", admin)
        self.assertEqual(treasury["balanceSat"], TREASURY_SAT - 1234)

        await page.fill("#user-q", "dave")
        await page.click("#user-search button[type=submit]")
        dave_row = view.locator("#users tbody tr").filter(has_text="dave")
        await dave_row.locator('[data-action="deactivate"]').click()
        await dave_row.locator('[data-action="confirm-deactivate"]').click()
        await expect(page.locator("#flash")).to_contain_text("Deactivated dave")
        await expect(dave_row.locator("td").nth(2)).to_have_text("no")  # the "active" column
        await expect(dave_row.locator("[data-action*=deactivate]")).to_have_count(0)
        dave = await self.data(api, f"/api/v1/users/{dave_id}", admin)
        self.assertFalse(dave["isActive"])
        await page.fill("#user-q", "")
        await page.click("#user-search button[type=submit]")
        await expect(view.locator("#users tbody tr")).to_have_count(6)
        await rows.filter(has_text="alice").locator('[data-action="adjust"]').click()
        await expect(view.locator("#adjustments tbody tr")).to_have_count(1)
        await screenshot(page, "users")

    async def payments_in_flight_oldest_first(
        self, page: Page, api: Api, admin: dict, in_flight: list[str]
    ) -> None:
        await page.click('[data-nav="payments"]')
        listed = await self.data(api, "/api/v1/admin/payments/in-flight", admin)
        self.assertEqual([p["id"] for p in listed], in_flight)
        rows = page.locator("#payments tbody tr")
        await expect(rows).to_have_count(2)
        for n, payment_id in enumerate(in_flight):
            await expect(rows.nth(n)).to_contain_text(payment_id)
            await expect(rows.nth(n)).to_contain_text("in_flight")
        await screenshot(page, "payments")

    async def jobs_refresh_by_themselves(self, page: Page) -> None:
        await page.click('[data-nav="jobs"]')
        await expect(page.locator("#jobs-health")).to_contain_text("Worker: alive")
        await expect(page.locator("#jobs")).to_contain_text("pay_invoice")
        stamp = page.locator("#view-jobs [data-updated]")
        await expect(stamp).to_contain_text("Updated")
        first = await stamp.text_content()
        await page.clock.fast_forward(AUTO_REFRESH_MS)
        await expect(stamp).not_to_have_text(first)  # the auto-refresh, no click
        await screenshot(page, "jobs")

    async def failed_delivery_redelivered(self, page: Page, api: Api, admin: dict, delivery_id: int) -> None:
        await page.click('[data-nav="webhooks"]')
        row = page.locator("#webhooks tbody tr").filter(has_text=self.receiver.url("/shop/hook"))
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("HTTP 500")
        await screenshot(page, "webhooks")
        await row.locator('[data-action="redeliver"]').click()
        await expect(page.locator("#flash")).to_contain_text(f"Delivery {delivery_id} (invoice.settled)")
        await expect(page.locator("#webhooks")).to_have_text("no failed delivery")

        async def delivered():
            [item] = [
                d
                for d in await self.data(api, "/api/v1/admin/webhooks/deliveries", admin)
                if d["id"] == delivery_id
            ]
            return item if item["status"] == "delivered" else None

        item = await wait_for(delivered, timeout_s=30, interval_s=0.1, message="the redelivery")
        self.assertEqual((item["attempts"], item["lastStatusCode"]), (9, 200))
        [received] = self.receiver.bodies_of("/shop/hook")
        self.assertEqual(received.headers["webhook-id"], item["webhookId"])

    async def tokens_are_refreshed(self, page: Page) -> None:
        """Before the access token is old (80 % of its life) and after a 401, with the refresh token."""
        read = "JSON.parse(sessionStorage.getItem('lw-admin-session'))"
        write = "(s) => sessionStorage.setItem('lw-admin-session', JSON.stringify(s))"
        first = await page.evaluate(read)
        await page.evaluate(write, {**first, "refreshAt": 0})
        async with page.expect_response("**/api/v1/auth/refresh") as refreshed:
            await page.click("#view-webhooks [data-reload]")
        self.assertEqual((await refreshed.value).status, 200)
        second = await page.evaluate(read)
        self.assertNotEqual(second["refreshToken"], first["refreshToken"])
        self.assertGreater(second["refreshAt"], 0)

        await page.evaluate(write, {**second, "accessToken": "spoiled"})
        async with page.expect_response("**/api/v1/auth/refresh") as refreshed:
            await page.click("#view-webhooks [data-reload]")
        self.assertEqual((await refreshed.value).status, 200)
        await expect(page.locator("#webhooks")).to_have_text("no failed delivery")
        await expect(page.locator("#view-webhooks")).to_be_visible()
        third = await page.evaluate(read)
        self.assertNotIn(third["accessToken"], ("spoiled", second["accessToken"]))

    async def signing_out_forgets_the_tokens(self, page: Page, api: Api) -> None:
        refresh_token = (await page.evaluate("JSON.parse(sessionStorage.getItem('lw-admin-session'))"))[
            "refreshToken"
        ]
        async with page.expect_response("**/api/v1/auth/logout"):
            await page.click("#logout")
        await expect(page.locator("#view-login")).to_be_visible()
        await page.wait_for_function("sessionStorage.length === 0")
        status, _ = await api.call("POST", "/api/v1/auth/refresh", {}, {"refreshToken": refresh_token})
        self.assertEqual(status, 401)

    async def violations_would_be_seen(self, page: Page, watch: Watch) -> None:
        """The watch is not blind: an inline style is refused by the policy and reported."""
        async with page.expect_console_message(lambda m: "securitypolicyviolation" in m.text):
            await page.evaluate(
                "() => { const s = document.createElement('style'); s.textContent = 'body{}';"
                " document.head.append(s); }"
            )
        self.assertTrue(any("style-src" in report for report in watch.csp_reports()), watch.console)

    # ---- helpers -------------------------------------------------------------------------------

    async def data(self, api: Api, path: str, headers: dict):
        status, body = await api.call("GET", path, headers)
        self.assertEqual(status, 200, body)
        return body["data"]

    async def ok(self, api: Api, path: str, headers: dict) -> bool:
        status, _ = await api.call("GET", path, headers)
        return status == 200
