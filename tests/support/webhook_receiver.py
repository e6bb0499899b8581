"""A real HTTP webhook receiver on 127.0.0.1 for the tests, scripted per request.

``behaviours`` is consumed one per request (then ``default``): an int answers with that status; ``"hang"``
never answers (until the test ends); ``"big"`` streams 10 MB; ``("redirect", url)`` answers 302 to
``url``. Every request is recorded as (raw body bytes, headers, path) in ``received``; ``bytes_sent``
counts what ``"big"`` managed to write before the client went away.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

BIG_BYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    path: str


@dataclass
class WebhookReceiver:
    behaviours: list[Any] = field(default_factory=list)
    default: Any = 200
    received: list[Received] = field(default_factory=list)
    bytes_sent: int = 0
    _server: TestServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        self._release.set()
        if self._server is not None:
            await self._server.close()

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None
        return str(self._server.make_url(path))

    def bodies_of(self, path: str = "/hook") -> list[Received]:
        return [item for item in self.received if item.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(await request.read(), dict(request.headers), request.path))
        behaviour = self.behaviours.pop(0) if self.behaviours else self.default
        if behaviour == "hang":
            await self._release.wait()
            return web.Response(status=200)
        if behaviour == "big":
            response = web.StreamResponse(status=200)
            response.content_length = BIG_BYTES
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while self.bytes_sent < BIG_BYTES:
                    await response.write(b"x" * CHUNK)
                    self.bytes_sent += CHUNK
            return response
        if isinstance(behaviour, tuple) and behaviour[0] == "redirect":
            raise web.HTTPFound(behaviour[1])
        return web.Response(status=int(behaviour), text="ok")
