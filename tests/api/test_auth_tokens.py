"""Access tokens (pinned HS256, expiry, live deactivation) and rotating refresh tokens (reuse detection,
expiry, concurrency, logout)."""

import asyncio
import base64
import hashlib
import json
import time
import uuid

import jwt
from sqlalchemy import select, update

from shared.db.models import RefreshToken, User
from tests.support.cases import ApiCase
from tests.support.factories import DEFAULT_PASSWORD, auth_headers, create_user

ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


async def error_of(test, response, status, code):
    test.assertEqual(response.status, status, await response.text())
    body = await response.json()
    test.assertIs(body["success"], False)
    test.assertEqual(body["error"]["code"], code)
    return body["error"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class AccessTokenTest(ApiCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.user_id = await create_user(self.sessions, username="alice")

    def claims(self, **changes):
        now = int(time.time())
        claims = {
            "sub": str(self.user_id),
            "role": "admin",
            "type": "access",
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        claims.update(changes)
        return claims

    async def test_valid_token_bearer_or_bare(self):
        headers = auth_headers(self.settings, self.user_id)
        self.assertEqual((await self.client.get(ME, headers=headers)).status, 200)
        bare = {"Authorization": headers["Authorization"].removeprefix("Bearer ")}
        self.assertEqual((await self.client.get(ME, headers=bare)).status, 200)

    async def test_missing_or_malformed_header(self):
        for headers in (
            {},
            {"Authorization": ""},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer a b"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer not.a.jwt"},
        ):
            await error_of(self, await self.client.get(ME, headers=headers), 401, "UNAUTHORIZED")

    async def test_alg_none_is_refused(self):
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(self.claims())}."
        await error_of(
            self, await self.client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401, "UNAUTHORIZED"
        )

    async def test_other_key_and_other_algorithm_are_refused(self):
        other_key = jwt.encode(self.claims(), "another-secret-that-is-long-enough-32b", algorithm="HS256")
        hs512 = jwt.encode(self.claims(), self.settings.jwt_key, algorithm="HS512")
        for token in (other_key, hs512):
            await error_of(
                self,
                await self.client.get(ME, headers={"Authorization": f"Bearer {token}"}),
                401,
                "UNAUTHORIZED",
            )

    async def test_expired_token(self):
        token = jwt.encode(
            self.claims(iat=int(time.time()) - 1000, exp=int(time.time()) - 10),
            self.settings.jwt_key,
            algorithm="HS256",
        )
        await error_of(
            self,
            await self.client.get(ME, headers={"Authorization": f"Bearer {token}"}),
            401,
            "TOKEN_EXPIRED",
        )

    async def test_wrong_type_or_subject(self):
        for claims in (
            self.claims(type="refresh"),
            self.claims(sub="not-a-uuid"),
            self.claims(sub=str(uuid.uuid4())),
        ):
            token = jwt.encode(claims, self.settings.jwt_key, algorithm="HS256")
            await error_of(
                self,
                await self.client.get(ME, headers={"Authorization": f"Bearer {token}"}),
                401,
                "UNAUTHORIZED",
            )

    async def test_refresh_token_is_not_an_access_token(self):
        login = await self.client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
        )
        refresh_token = (await login.json())["data"]["refreshToken"]
        await error_of(
            self,
            await self.client.get(ME, headers={"Authorization": f"Bearer {refresh_token}"}),
            401,
            "UNAUTHORIZED",
        )

    async def test_deactivated_users_live_token_stops_working(self):
        headers = auth_headers(self.settings, self.user_id)
        self.assertEqual((await self.client.get(ME, headers=headers)).status, 200)
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == self.user_id).values(is_active=False))
        await error_of(self, await self.client.get(ME, headers=headers), 401, "UNAUTHORIZED")

    async def test_deactivation_stops_the_invoice_list_read_in_one_statement(self):
        # GET /api/v1/invoices reads the users row in the same statement as the page.
        headers = auth_headers(self.settings, self.user_id)
        self.assertEqual((await self.client.get("/api/v1/invoices", headers=headers)).status, 200)
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == self.user_id).values(is_active=False))
        for query in ("", "?direction=incoming&state=open", "?pageSize=0"):
            response = await self.client.get(f"/api/v1/invoices{query}", headers=headers)
            await error_of(self, response, 401, "UNAUTHORIZED")
        unknown = auth_headers(self.settings, uuid.uuid4())
        await error_of(self, await self.client.get("/api/v1/invoices", headers=unknown), 401, "UNAUTHORIZED")

    async def test_role_comes_from_the_database_not_the_token(self):
        # The token claims admin; the database says user.
        token = jwt.encode(self.claims(role="admin"), self.settings.jwt_key, algorithm="HS256")
        response = await self.client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
        await error_of(self, response, 403, "FORBIDDEN")


class RefreshTokenTest(ApiCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.user_id = await create_user(self.sessions, username="alice")
        self.first = await self.login()

    async def login(self):
        response = await self.client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
        )
        self.assertEqual(response.status, 200)
        return (await response.json())["data"]

    async def refresh(self, token):
        return await self.client.post(REFRESH, json={"refreshToken": token})

    async def test_only_the_hash_is_stored(self):
        async with self.sessions() as session:
            rows = (await session.scalars(select(RefreshToken))).all()
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].token_hash, hashlib.sha256(self.first["refreshToken"].encode()).digest())
        self.assertEqual(rows[0].user_id, self.user_id)
        ttl = (rows[0].expires_at - rows[0].created_at).total_seconds()
        self.assertAlmostEqual(ttl, self.settings.refresh_token_ttl, delta=5)

    async def test_rotation_spends_the_old_token(self):
        response = await self.refresh(self.first["refreshToken"])
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        second = (await response.json())["data"]
        self.assertEqual(second["user"]["id"], str(self.user_id))
        self.assertNotEqual(second["refreshToken"], self.first["refreshToken"])
        self.assertEqual(
            (await self.client.get(ME, headers={"Authorization": f"Bearer {second['accessToken']}"})).status,
            200,
        )
        third = await self.refresh(second["refreshToken"])
        self.assertEqual(third.status, 200)
        async with self.sessions() as session:
            rows = (await session.scalars(select(RefreshToken).order_by(RefreshToken.created_at))).all()
        self.assertEqual(len({row.family_id for row in rows}), 1)
        self.assertEqual([row.used_at is not None for row in rows], [True, True, False])

    async def test_reuse_revokes_the_whole_family(self):
        rotated = (await (await self.refresh(self.first["refreshToken"])).json())["data"]
        other_session = await self.login()  # another family: untouched by the theft detection
        await error_of(self, await self.refresh(self.first["refreshToken"]), 401, "UNAUTHORIZED")
        # The successor issued by the rotation stops working too.
        await error_of(self, await self.refresh(rotated["refreshToken"]), 401, "UNAUTHORIZED")
        self.assertEqual((await self.refresh(other_session["refreshToken"])).status, 200)

    async def test_concurrent_refreshes_with_one_token_cannot_both_succeed(self):
        responses = await asyncio.gather(*(self.refresh(self.first["refreshToken"]) for _ in range(5)))
        statuses = [r.status for r in responses]
        self.assertEqual(statuses.count(200), 1, statuses)
        self.assertEqual(statuses.count(401), 4, statuses)

    async def test_expired_refresh_token(self):
        async with self.sessions() as session, session.begin():
            await session.execute(update(RefreshToken).values(expires_at=RefreshToken.created_at))
        await error_of(self, await self.refresh(self.first["refreshToken"]), 401, "TOKEN_EXPIRED")

    async def test_unknown_and_malformed_refresh_tokens(self):
        await error_of(self, await self.refresh("x" * 43), 401, "UNAUTHORIZED")
        for body in (
            {},
            {"refreshToken": ""},
            {"refreshToken": 5},
            {"refreshToken": "x" * 600},
            {"refresh_token": self.first["refreshToken"]},
        ):
            await error_of(self, await self.client.post(REFRESH, json=body), 400, "VALIDATION_ERROR")

    async def test_deactivated_user_cannot_refresh(self):
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == self.user_id).values(is_active=False))
        await error_of(self, await self.refresh(self.first["refreshToken"]), 401, "UNAUTHORIZED")

    async def test_logout_revokes_the_family(self):
        rotated = (await (await self.refresh(self.first["refreshToken"])).json())["data"]
        headers = {"Authorization": f"Bearer {rotated['accessToken']}"}
        response = await self.client.post(
            LOGOUT, json={"refreshToken": rotated["refreshToken"]}, headers=headers
        )
        self.assertEqual(response.status, 204)
        await error_of(self, await self.refresh(rotated["refreshToken"]), 401, "UNAUTHORIZED")
        # Logging out twice is harmless.
        again = await self.client.post(
            LOGOUT, json={"refreshToken": rotated["refreshToken"]}, headers=headers
        )
        self.assertEqual(again.status, 204)

    async def test_logout_requires_authentication(self):
        response = await self.client.post(LOGOUT, json={"refreshToken": self.first["refreshToken"]})
        await error_of(self, response, 401, "UNAUTHORIZED")
        self.assertEqual((await self.refresh(self.first["refreshToken"])).status, 200)

    async def test_logout_cannot_revoke_another_users_session(self):
        other_id = await create_user(self.sessions, username="mallory")
        response = await self.client.post(
            LOGOUT,
            json={"refreshToken": self.first["refreshToken"]},
            headers=auth_headers(self.settings, other_id),
        )
        await error_of(self, response, 401, "UNAUTHORIZED")
        self.assertEqual((await self.refresh(self.first["refreshToken"])).status, 200)
        response = await self.client.post(
            LOGOUT, json={"refreshToken": "y" * 43}, headers=auth_headers(self.settings, other_id)
        )
        await error_of(self, response, 401, "UNAUTHORIZED")
