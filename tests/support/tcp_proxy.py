"""A TCP proxy on 127.0.0.1 that can make its open connections half-open, for fault tests.

``freeze()`` stops forwarding bytes on every connection open at that moment, in both directions, and
keeps the sockets open: each side sees a live TCP connection that never answers again (the node, or
a NAT between, forgot it). Connections made after the freeze are forwarded normally, so a client that
notices and reconnects gets through.

    async with TcpProxy(target_port) as proxy:   # proxy.port: where to connect instead
        ...
        proxy.freeze()
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._live: list[asyncio.Event] = []  # one "frozen" event per open connection
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def freeze(self) -> None:
        """From now on, the connections open at this moment carry no byte in either direction."""
        for frozen in self._live:
            frozen.set()
        self._live = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        frozen = asyncio.Event()
        self._live.append(frozen)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, frozen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, frozen: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while not frozen.is_set():
                read = asyncio.ensure_future(source.read(65536))
                stop = asyncio.ensure_future(frozen.wait())
                done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if read not in done:
                    read.cancel()
                    break
                data = read.result()
                if not data:
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()
            # Frozen: hold the socket open and silent until the test ends.
            await asyncio.Event().wait()
