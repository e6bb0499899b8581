"""Run a real lnd_simnet process for a test (reusable by every test suite).

    from tests.support.simnet import Simnet

    class MyTest(aiounittest.AsyncTestCase):
        async def test_something(self):
            async with Simnet() as net:                 # temp dir, free ports, alice + bob
                alice = net.client("alice")             # GrpcLightningClient (TLS + admin macaroon)
                added = await alice.add_invoice(value_msat=1_000_000, memo="x", expiry_s=3600,
                                                preimage=os.urandom(32))
                paid = await net.cli("pay", "--node", "bob", added.payment_request)  # parsed JSON
                await net.restart()                     # SIGTERM + start again on the same ports
                await net.kill()                        # SIGKILL (crash), then `await net.start()`

API (all coroutines unless noted):
    Simnet(data_dir=None, *, serve_args=(), ready_timeout_s=30.0)
        data_dir None -> a fresh temp dir, removed on exit. serve_args are extra flags for
        `python -m lnd_simnet serve`, e.g. ("--delay-ms", "0", "--fee-base-msat", "0").
    start() / stop() / kill() / restart()      stop is SIGTERM (graceful), kill is SIGKILL.
    client(node, macaroon="admin", timeout_s=10.0) -> GrpcLightningClient   (plain method, cached;
        clients are closed by stop/kill/restart: call client() again afterwards).
    node(node) -> dict                          network.json entry: rpcserver, host, port, pubkey,
                                                tls_cert, admin_macaroon, invoice_macaroon, ...
    cli(*args, check=True) -> dict              runs `python -m lnd_simnet <args> --dir <dir>`.
    raw_channel(node, macaroon_hex=None) -> grpc.aio.Channel  (plain method; caller closes it).
    env_for(node) -> dict                      LND_GRPC_* style values for a third-party client.
    data_dir: Path, pid: int | None

Readiness: the helper deletes nothing but network.json, starts the process, and polls (with a
deadline) until network.json names the new pid and GetInfo answers on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc

from shared.lightning.grpc_channel import channel_credentials, open_channel
from shared.lightning.grpc_client import GrpcLightningClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NODES = ("alice", "bob")


class SimnetError(RuntimeError):
    pass


class Simnet:
    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        serve_args: tuple[str, ...] | list[str] = (),
        ready_timeout_s: float = 30.0,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="simnet-")) if data_dir is None else Path(data_dir)
        self.serve_args = tuple(serve_args)
        self.ready_timeout_s = ready_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._ports: dict[str, int] = {"alice": 0, "bob": 0}
        self._network: dict | None = None
        self._clients: dict[tuple[str, str, float], GrpcLightningClient] = {}
        self._log_path = self.data_dir / "serve.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def __aenter__(self) -> Simnet:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def start(self) -> None:
        if self._proc is not None:
            raise SimnetError("already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "network.json").unlink(missing_ok=True)
        args = [
            sys.executable,
            "-m",
            "lnd_simnet",
            "serve",
            "--dir",
            str(self.data_dir),
            "--alice-port",
            str(self._ports["alice"]),
            "--bob-port",
            str(self._ports["bob"]),
            "--log-level",
            "WARNING",
            *self.serve_args,
        ]
        log = open(self._log_path, "ab")  # noqa: ASYNC230 - a tiny open, handed to the child
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args, cwd=REPO_ROOT, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            log.close()
        try:
            await self._wait_ready()
        except BaseException:
            await self.kill()
            raise

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        path = self.data_dir / "network.json"
        while True:
            if self._proc.returncode is not None:
                raise SimnetError(f"simnet exited with {self._proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                info = json.loads(path.read_text())
                if info.get("pid") == self._proc.pid:
                    self._network = info
                    break
            if time.monotonic() > deadline:
                raise SimnetError(f"simnet not ready after {self.ready_timeout_s}s: {self.log_tail()}")
            await asyncio.sleep(0.05)
        self._ports = {n: self._network["nodes"][n]["port"] for n in NODES}
        for name in NODES:
            while True:
                try:
                    await self.client(name, timeout_s=2.0).get_info()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    async def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()

    async def _end(self, sig: int, wait_s: float) -> None:
        await self._close_clients()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), wait_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after 10 s."""
        await self._end(signal.SIGTERM, 10.0)

    async def kill(self) -> None:
        """Crash it (SIGKILL): nothing is flushed or closed by the simnet."""
        await self._end(signal.SIGKILL, 10.0)

    async def restart(self, *, crash: bool = False) -> None:
        """Stop (or kill) and start again on the same ports and data dir."""
        await (self.kill() if crash else self.stop())
        await self.start()

    def node(self, name: str) -> dict:
        if self._network is None:
            raise SimnetError("not started")
        return self._network["nodes"][name]

    def macaroon_hex(self, name: str, kind: str = "admin") -> str:
        return Path(self.node(name)[f"{kind}_macaroon"]).read_bytes().hex()

    def tls_cert(self, name: str) -> bytes:
        return Path(self.node(name)["tls_cert"]).read_bytes()

    def client(self, name: str, macaroon: str = "admin", timeout_s: float = 10.0) -> GrpcLightningClient:
        key = (name, macaroon, timeout_s)
        if key not in self._clients:
            self._clients[key] = GrpcLightningClient(
                self.node(name)["rpcserver"],
                self.tls_cert(name),
                self.macaroon_hex(name, macaroon),
                timeout_s,
            )
        return self._clients[key]

    def raw_channel(self, name: str, macaroon_hex: str | None = None) -> grpc.aio.Channel:
        """A channel with TLS and the given macaroon hex (default: admin); the caller closes it."""
        mac = self.macaroon_hex(name) if macaroon_hex is None else macaroon_hex
        return open_channel(self.node(name)["rpcserver"], self.tls_cert(name), mac)

    def credentials(self, name: str, macaroon_hex: str | None = None) -> grpc.ChannelCredentials:
        mac = self.macaroon_hex(name) if macaroon_hex is None else macaroon_hex
        return channel_credentials(self.tls_cert(name), mac)

    def env_for(self, name: str) -> dict[str, str]:
        info = self.node(name)
        return {
            "LND_GRPC_ENDPOINT": info["host"],
            "LND_GRPC_PORT": str(info["port"]),
            "LND_GRPC_CERT": info["tls_cert"],
            "LND_GRPC_MACAROON": info["admin_macaroon"],
        }

    async def cli(self, *args: str, check: bool = True, timeout_s: float = 60.0) -> dict:
        """Run `python -m lnd_simnet <args> --dir <data_dir>` and parse its JSON output."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lnd_simnet",
            *args,
            "--dir",
            str(self.data_dir),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        if check and proc.returncode != 0:
            raise SimnetError(f"cli {args} exited {proc.returncode}: {out.decode()} {err.decode()}")
        return json.loads(out.decode())


async def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"):
    """Poll an (async or sync) predicate until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
