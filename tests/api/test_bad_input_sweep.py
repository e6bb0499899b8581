"""Bad input on every operation of the OpenAPI registry: a 4xx in the route's error shape, never a 5xx,
and nothing changed.

The operations come from ``openapi.operations()`` after ``create_app``, so a route registered by any
module is swept as soon as it lands. For each one the cases of ``tests/support/bad_input.py`` are sent
in process (no worker: the waits are 0, so an accepted create answers 202 at once). After every
answer the content of every table and the ledger totals are compared with the state before it; a
4xx must leave them unchanged.

To sweep a new route deeply, declare here what a *valid* request looks like (``bases`` for the body,
``home_rows`` for path ids that point at a row the caller owns); without that the sweep uses a body
synthesised from the model and a random id, and still checks every refusal. The error shape comes
from the operation's ``error_model`` (``openapi.register(..., error_model=LndHubError)``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter

import asyncpg

from api_service import openapi
from api_service.openapi import Operation
from api_service.schemas.envelope import ErrorEnvelope
from tests.api.test_wallet_support import insert_open_invoice, insert_payment
from tests.support import bad_input, env
from tests.support.bad_input import Case, Target
from tests.support.bolt11_factory import make_payment_request
from tests.support.cases import ApiCase
from tests.support.factories import DEFAULT_PASSWORD, auth_headers, create_user, insert_webhook_delivery

MAX_REPORTED = 40
# Operations whose valid request needs the Lightning node. No worker runs in the sweep, so the node
# never answers: such an operation answers an *accepted* request with 503 in its protocol's shape
# ("the node did not make the invoice in time"), having written the pending row the worker would
# complete. That is the right answer, not a finding; refused input must still be a 4xx that changes
# nothing.
NODE_BOUND = {
    ("POST", "/lndhub/addinvoice"),
    ("POST", "/lndhub/payinvoice"),
    ("GET", "/lndhub/getinfo"),
    ("GET", "/lnurlp/{username}/callback"),
}


class World:
    """The rows the sweep runs against: callers, a sacrificial user for admin updates, and rows of two
    users, so "another user's id" is a real row."""

    async def build(self, case: ApiCase) -> World:
        sessions, settings = case.sessions, case.settings
        self.admin_id = await create_user(sessions, username="sweep_admin", role="admin")
        self.alice_id = await create_user(sessions, username="alice", balance_sat=1_000_000)
        self.bob_id = await create_user(sessions, username="bob", balance_sat=1_000)
        self.dave_id = await create_user(sessions, username="dave")
        self.carol_id = await create_user(sessions, username="carol", is_active=False)
        self.alice_invoice, _, _ = await insert_open_invoice(case, self.alice_id)
        self.alice_payment, _ = await insert_payment(case, self.alice_id)
        self.alice_in_flight, _ = await insert_payment(case, self.alice_id, state="in_flight")
        bob_hooked, _, _ = await insert_open_invoice(case, self.bob_id)
        self.bob_delivery = await insert_webhook_delivery(sessions, self.bob_id, bob_hooked)
        bob_invoice, _, bob_invoice_hash = await insert_open_invoice(case, self.bob_id)
        bob_payment, bob_payment_hash = await insert_payment(case, self.bob_id)
        self.bob_rows = {
            "user id": str(self.bob_id),
            "invoice id": str(bob_invoice),
            "invoice hash": bob_invoice_hash.hex(),
            "payment id": str(bob_payment),
            "payment hash": bob_payment_hash.hex(),
        }
        self.headers = {
            None: {},
            "user": auth_headers(settings, self.alice_id),
            "admin": auth_headers(settings, self.admin_id, "admin"),
        }
        self.tokens = {
            **bad_input.invalid_tokens(settings.jwt_key, self.alice_id, self.carol_id),
            "user": self.headers["user"],
            "other": auth_headers(settings, self.bob_id),
        }
        return self


class BadInputSweepTest(ApiCase):
    settings_overrides = {"invoice_wait_s": 0, "payment_wait_s": 0}

    def home_rows(self, caller: str | None) -> dict[str, str]:
        """Path values of rows the caller may use (admins update the sacrificial user, not themselves)."""
        w = self.world
        return {
            "/api/v1/users/{id}": str(w.dave_id if caller == "admin" else w.alice_id),
            "/api/v1/invoices/{id}": str(w.alice_invoice),
            "/api/v1/payments/{id}": str(w.alice_payment),
            # An admin's redelivery of another user's delivery is the operation itself.
            "/api/v1/admin/webhooks/deliveries/{id}/redeliver": str(w.bob_delivery),
        }

    def bases(self, caller: str | None) -> dict[tuple[str, str], object]:
        """A fresh valid body per call, for the operations that have one."""
        names = itertools.count()
        refresh = {"refreshToken": "r" * 43}  # well-formed, unknown: no real session is revoked
        own_name = {"username": "dave" if caller == "admin" else "alice"}
        return {
            ("POST", "/api/v1/auth/register"): lambda: {
                "username": f"sweep{next(names)}",
                "password": "correct horse",
            },
            ("POST", "/api/v1/auth/login"): lambda: {"username": "alice", "password": DEFAULT_PASSWORD},
            ("POST", "/api/v1/auth/refresh"): lambda: dict(refresh),
            ("POST", "/api/v1/auth/logout"): lambda: dict(refresh),
            ("PUT", "/api/v1/users/{id}"): lambda: dict(own_name),
            ("PATCH", "/api/v1/users/{id}"): lambda: dict(own_name),
            ("POST", "/api/v1/invoices"): lambda: {"amountSat": 100, "memo": "sweep"},
            ("POST", "/api/v1/payments"): lambda: {
                "paymentRequest": make_payment_request(amount_msat=10_000)[0]
            },
            ("POST", "/api/v1/admin/treasury/deposits"): lambda: {"amountSat": 5, "reason": "sweep"},
            ("POST", "/api/v1/admin/adjustments"): lambda: {
                "userId": str(self.world.alice_id),
                "amountSat": 1,
                "direction": "debit",
                "reason": "sweep",
            },
        }

    def target(self, op: Operation, caller: str | None) -> Target:
        homes = self.home_rows(caller)
        values = {name: homes.get(op.path, str(uuid.uuid4())) for name in bad_input.path_params(op.path)}
        body = None
        if op.request_model is not None:
            body = self.bases(caller).get((op.method, op.path))
            if body is None:
                synthesized = bad_input.synthesize(op.request_model)
                body = lambda: dict(synthesized)  # noqa: E731
        query = {}
        if op.query_model is not None:  # its required parameters, if any
            query = {name: str(value) for name, value in bad_input.synthesize(op.query_model).items()}
        return Target(headers=self.world.headers[caller], path_values=values, body=body, query=query)

    def cases_of(self, op: Operation):
        target = self.target(op, op.auth)
        yield from bad_input.cases(op, target, self.world.tokens, self.settings.max_body_bytes)
        if op.auth == "user" and bad_input.path_params(op.path):
            yield from bad_input.foreign_path_cases(op, target, self.world.bob_rows)
            # An admin's request reaches code a user's does not (role changes, other users' rows).
            admin = self.target(op, "admin")
            yield from bad_input.path_cases(op, admin)
            yield from bad_input.query_cases(op, admin)
            yield from bad_input.body_cases(op, admin, self.settings.max_body_bytes)

    @staticmethod
    def node_bound_accepted(op: Operation, case: Case, status: int) -> bool:
        return status == 503 and not case.must_fail and (op.method, op.path) in NODE_BOUND

    async def judge(self, op: Operation, case: Case, status: int, text: str, content_type: str) -> list[str]:
        problems = []
        if self.node_bound_accepted(op, case, status):
            op.error_model.model_validate_json(text)  # still the protocol's shape
        elif status >= 500:
            problems.append(f"{status}: {text[:300]}")
        elif case.statuses is not None and status not in case.statuses:
            problems.append(f"expected {sorted(case.statuses)}, got {status}: {text[:200]}")
        elif case.must_fail and status < 400:
            problems.append(f"bad input accepted with {status}: {text[:200]}")
        if 400 <= status < 500:
            # A ".." segment is resolved away by the router: the request reaches another route (or
            # none), whose error shape applies.
            shapes = (op.error_model, ErrorEnvelope) if "=.." in case.label else (op.error_model,)
            try:
                assert content_type == "application/json", content_type
                self.first_shape(shapes, text)
            except Exception as exc:  # any mismatch is a finding
                problems.append(
                    f"{status} not in the {op.error_model.__name__} shape: {exc!s:.200} {text[:200]}"
                )
        return problems

    @staticmethod
    def first_shape(shapes, text: str) -> None:
        for shape in shapes[:-1]:
            try:
                shape.model_validate_json(text)
                return
            except ValueError:
                continue
        shapes[-1].model_validate_json(text)

    async def send(self, op: Operation, case: Case, database: asyncpg.Connection, state: dict) -> tuple:
        """Send one case; (its status, the findings, the state after it)."""
        async with self.client.request(
            case.method, case.path, headers=case.headers, data=case.body
        ) as response:
            text = await response.text(errors="replace")
        findings = await self.judge(op, case, response.status, text, response.content_type)
        after = await bad_input.state_digest(database)
        if (
            response.status >= 400
            and after != state
            and not self.node_bound_accepted(op, case, response.status)
        ):
            changed = sorted(name for name in after if after[name] != state.get(name))
            findings.append(f"{response.status} but changed {changed}")
        return response.status, findings, after

    async def test_every_operation_answers_bad_input_with_a_4xx_and_changes_nothing(self):
        self.world = await World().build(self)
        failures: list[str] = []
        statuses: Counter[int] = Counter()
        started = time.monotonic()
        ops = openapi.operations()
        swept: Counter[Operation] = Counter()
        database = await asyncpg.connect(env.asyncpg_dsn(self.settings.database_url))
        try:
            state = await bad_input.state_digest(database)
            for op in ops:
                for case in self.cases_of(op):
                    status, findings, state = await self.send(op, case, database, state)
                    statuses[status] += 1
                    swept[op] += 1
                    failures += [f"{op.method} {op.path} [{case.label}]: {f}" for f in findings]
        finally:
            await database.close()
        # Only an operation that takes no input at all (public, no parameters, no body) has no case.
        inputless = [op for op in ops if not swept[op]]
        for op in inputless:
            self.assertEqual((op.auth, op.query_model, op.request_model), (None, None, None), op.path)
            self.assertEqual(bad_input.path_params(op.path), [], op.path)
        print(
            f"\nbad-input sweep: {len(ops) - len(inputless)} operations, {swept.total()} requests"
            f" in {time.monotonic() - started:.1f}s, statuses {dict(sorted(statuses.items()))};"
            f" no input to sweep: {', '.join(f'{op.method} {op.path}' for op in inputless)}"
        )
        if failures:
            self.fail(f"{len(failures)} findings:\n" + "\n".join(failures[:MAX_REPORTED]))


class PageSizeTest(ApiCase):
    """``pageSize >= 1`` on every paginated operation: 0 would divide by zero computing totalPages."""

    async def test_page_size_zero_is_a_400_on_every_paginated_operation(self):
        admin_id = await create_user(self.sessions, username="pager", role="admin")
        await insert_open_invoice(self, admin_id)  # a row on every list: totalItems > 0
        headers = auth_headers(self.settings, admin_id, "admin")
        paginated = [op for op in openapi.operations() if op.paginated and op.method == "GET"]
        self.assertGreaterEqual(len(paginated), 2)
        for op in paginated:
            path = bad_input.fill(
                op.path, {name: str(uuid.uuid4()) for name in bad_input.path_params(op.path)}
            )
            for query in ({"pageSize": "0"}, {"pageSize": "-1"}, {"pageSize": "101"}, {"page": "0"}):
                with self.subTest(op=op.path, query=query):
                    response = await self.client.get(path, params=query, headers=headers)
                    body = await response.json()
                    self.assertEqual(response.status, 400, body)
                    self.assertEqual(body["error"]["code"], "VALIDATION_ERROR")
                    self.assertEqual([d["field"] for d in body["error"]["details"]], list(query))
