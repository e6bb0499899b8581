"""The soak's webhook receiver on 127.0.0.1: verifies every delivery, deduplicates by webhook-id.

One URL per user (``/hook/<user id>``) so each POST is verified with that user's Standard Webhooks
secret (``standardwebhooks``). A seeded tenth of the events is refused once with a 500, so the
worker's 5 s retry runs under the soak too; every later attempt of an event is answered 200.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

REFUSE_FIRST_PER_MILLE = 100


@dataclass
class Receiver:
    seed: int
    secrets: dict[str, str] = field(default_factory=dict)  # user id -> whsec_...
    delivered: dict[str, dict] = field(default_factory=dict)  # webhook-id -> first verified event
    posts: int = 0
    refused: set[str] = field(default_factory=set)
    bad_signatures: list[dict] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    def url(self, user_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{user_id}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook/{user_id}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refuse_first(self, webhook_id: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{webhook_id}".encode()).digest()
        return int.from_bytes(digest[:2], "big") % 1000 < REFUSE_FIRST_PER_MILLE

    async def _handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        body = await request.read()
        user_id = request.match_info["user_id"]
        webhook_id = request.headers.get("webhook-id", "")
        secret = self.secrets.get(user_id)
        try:
            if secret is None:
                raise WebhookVerificationError("no secret known for this user")
            event = Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.bad_signatures.append({"webhookId": webhook_id, "userId": user_id, "error": str(exc)})
            return web.Response(status=400, text="bad signature")
        if webhook_id not in self.refused and self._refuse_first(webhook_id):
            self.refused.add(webhook_id)
            return web.Response(status=500, text="refused once on purpose")
        self.delivered.setdefault(webhook_id, {"type": event.get("type"), "userId": user_id})
        return web.Response(status=200, text="ok")
