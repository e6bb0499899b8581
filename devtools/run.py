"""`make run`: migrate, seed, then supervise lnd_simnet, one worker and the API until Ctrl-C.

With the simnet (development), the first start also records a treasury deposit equal to simnet
alice's local channel balance (`python -m api_service record-deposit --first-only`), so the
tutorial's "admin pays from the node" works on a fresh clone: the treasury only spends what was
recorded as deposited.

Why a supervisor and not `cmd &` in the Makefile: a person wants one terminal, every log line
tagged with the process that wrote it, one Ctrl-C that stops everything in order (API and worker
before the Lightning node they talk to), and a loud stop when any process dies instead of a
half-running system. Children run in their own sessions (the terminal's Ctrl-C reaches only us,
so the stop order is ours) and ask the kernel to SIGTERM them if we die without cleaning up.

Environment for every child: ours, plus DATABASE_URL / REDIS_URL (from `.run/services.env`, or
found by `devtools.services.ensure` when missing), LND_GRPC_HOST=127.0.0.1:10009 and alice's
LND_TLS_CERT_PATH / LND_MACAROON_PATH under `.run/simnet`, API_HOST=127.0.0.1, API_PORT=8000,
each only when not already set. LND_GRPC_HOST set beforehand means a real LND: no simnet is started.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.netutil import port_accepts

ROOT = Path(__file__).resolve().parent.parent
SIMNET_DIR = ROOT / ".run" / "simnet"
ALICE_CERT = SIMNET_DIR / "alice" / "tls.cert"
ALICE_MACAROON = SIMNET_DIR / "alice" / "data" / "chain" / "bitcoin" / "regtest" / "admin.macaroon"
SIMNET_DEADLINE_S = 30.0
READY_DEADLINE_S = 60.0
GRACE_S = 10.0
PY = sys.executable


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived: stop everything, exit 0."""


class Failed(Exception):
    """Something did not start or died: stop everything, exit 1 with this message."""


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    pump: asyncio.Task | None = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM me if the supervisor dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _prefix(name: str) -> str:
    text = f"{name:>8} | "
    if not sys.stdout.isatty():
        return text
    colour = {"migrate": 35, "seed": 35, "simnet": 33, "worker": 36, "api": 32}.get(name, 37)
    return f"\033[{colour}m{text}\033[0m"


def say(message: str) -> None:
    print(f"{_prefix('run')}{message}", flush=True)


async def _pump(child: Child) -> None:
    assert child.proc.stdout is not None
    prefix = _prefix(child.name)
    async for raw in child.proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        child.lines.append(line)
        print(prefix + line, flush=True)


async def start(name: str, args: list[str], env: dict[str, str]) -> Child:
    proc = await asyncio.create_subprocess_exec(
        PY, *args, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, preexec_fn=_die_with_parent, limit=1 << 20,
    )  # fmt: skip
    child = Child(name, proc)
    child.pump = asyncio.create_task(_pump(child))
    return child


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []
        self.stop_requested = asyncio.Event()
        self.hurry = asyncio.Event()  # a second Ctrl-C: no more grace

    def request_stop(self) -> None:
        if self.stop_requested.is_set():
            self.hurry.set()
        self.stop_requested.set()

    async def wait_for(self, what: str, condition: Callable[[], bool], deadline_s: float) -> None:
        """Poll `condition` until true; fail if a child dies, the deadline passes or a stop arrives."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not await asyncio.to_thread(condition):
            self.check_children()
            if loop.time() > end:
                raise Failed(f"{what}: not ready after {deadline_s:.0f} s")
            try:
                await asyncio.wait_for(self.stop_requested.wait(), 0.2)
            except TimeoutError:
                continue
            raise Stopped

    def check_children(self) -> None:
        for child in self.children:
            if child.proc.returncode is not None:
                raise Failed(f"{child.name} exited unexpectedly with code {child.proc.returncode}")

    async def step(self, name: str, args: list[str]) -> list[str]:
        """Run one command to completion (migrate, seed); fail with its output if it fails."""
        child = await start(name, args, self.env)
        waiter = asyncio.create_task(child.proc.wait())
        stopper = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not waiter.done():
            await self.stop_child(child)
            raise Stopped
        await child.pump
        if child.proc.returncode != 0:
            raise Failed(f"{name} failed with code {child.proc.returncode} (its output is above)")
        return child.lines

    async def stop_child(self, child: Child) -> None:
        """SIGTERM the child's process group, SIGKILL it after the grace period (or a second Ctrl-C)."""
        if child.proc.returncode is None:
            try:
                os.killpg(child.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            waiter = asyncio.create_task(child.proc.wait())
            hurry = asyncio.create_task(self.hurry.wait())
            await asyncio.wait({waiter, hurry}, timeout=GRACE_S, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
            if not waiter.done():
                say(f"{child.name} did not stop in time; killing it")
                try:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await waiter
        if child.pump is not None:
            await child.pump

    async def stop_all(self) -> None:
        for child in reversed(self.children):  # API and worker before the node they use
            await self.stop_child(child)
        self.children.clear()

    async def run(self, with_simnet: bool) -> None:
        host, port = self.env["API_HOST"], int(self.env["API_PORT"])
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a comparison, not a bind
        if port_accepts(probe_host, port):
            raise Failed(f"something already listens on {probe_host}:{port}; stop it or set API_PORT")
        if with_simnet and port_accepts("127.0.0.1", 10009):
            raise Failed("127.0.0.1:10009 is taken (an lnd_simnet left running?); stop it first")
        metrics_port = int(self.env.get("WORKER_METRICS_PORT") or 9101)
        if metrics_port and port_accepts("127.0.0.1", metrics_port):
            raise Failed(
                f"127.0.0.1:{metrics_port} (the worker's metrics) is taken; stop it or set "
                "WORKER_METRICS_PORT (0: any free port)"
            )

        await self.step("migrate", ["-m", "alembic", "upgrade", "head"])
        seed_lines = await self.step("seed", ["-m", "api_service", "seed"])

        if with_simnet:
            simnet_args = ["-m", "lnd_simnet", "serve", "--dir", str(SIMNET_DIR)]
            self.children.append(await start("simnet", simnet_args, self.env))
            await self.wait_for(
                "lnd_simnet",
                lambda: port_accepts("127.0.0.1", 10009) and ALICE_CERT.exists() and ALICE_MACAROON.exists(),
                SIMNET_DEADLINE_S,
            )
            await self.fund_dev_treasury()
        self.children.append(await start("worker", ["-m", "lightning_worker"], self.env))
        self.children.append(await start("api", ["-m", "api_service"], self.env))
        base_url = f"http://{probe_host}:{port}"
        await self.wait_for("api /readyz", lambda: _ready(base_url + "/readyz"), READY_DEADLINE_S)
        self.banner(base_url, seed_lines, with_simnet)

        await self.wait_for("children", lambda: False, float("inf"))

    async def fund_dev_treasury(self) -> None:
        """On a fresh development database, deposit simnet alice's local balance into the treasury."""
        if self.env.get("ENVIRONMENT", "development") != "development":
            return
        balance = ["-m", "lnd_simnet", "balance", "--node", "alice", "--dir", str(SIMNET_DIR)]
        lines = await self.step("balance", balance)
        local_sat = int(json.loads("\n".join(lines))["local_balance_sat"])
        if local_sat > 0:
            reason = "development: simnet alice's local channel balance at the first start of make run"
            args = ["-m", "api_service", "record-deposit", "--amount-sat", str(local_sat), "--reason", reason]
            await self.step("deposit", [*args, "--first-only"])

    def banner(self, base_url: str, seed_lines: list[str], with_simnet: bool) -> None:
        say("")
        say(f"lightning-wallet is up: {base_url}  (API {base_url}/api/v1, docs {base_url}/api/v1/docs)")
        say(f"admin console: {base_url}/admin (sign in as admin)")
        worker_metrics = self.env.get("WORKER_METRICS_PORT") or "9101"
        say(f"metrics: {base_url}/metrics (API), worker on port {worker_metrics} (0: see its log)")
        say(f"wallet apps (LndHub): lndhub://<username>:<password>@{base_url}/lndhub")
        for line in seed_lines:
            say(f"  {line}")
        if with_simnet:
            say("make a bob invoice to pay:  .venv/bin/python -m lnd_simnet invoice --node bob --amt 1000")
        say("Ctrl-C to stop")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - a fixed local http URL
            return response.status == 200
    except OSError:
        return False


def child_env(environ: dict[str, str]) -> dict[str, str]:
    """Our environment plus the defaults `make run` needs; values already set always win."""
    env = dict(environ)
    if not env.get("DATABASE_URL") or not env.get("REDIS_URL"):
        from devtools.services import ensure

        found = ensure(env=env)
        env.setdefault("DATABASE_URL", found.database_url)
        env.setdefault("REDIS_URL", found.redis_url)
    defaults = {"API_HOST": "127.0.0.1", "API_PORT": "8000", "PYTHONUNBUFFERED": "1"}
    if not env.get("LND_GRPC_HOST"):  # no real LND named: the simnet's alice
        defaults.update(
            LND_GRPC_HOST="127.0.0.1:10009",
            LND_TLS_CERT_PATH=str(ALICE_CERT),
            LND_MACAROON_PATH=str(ALICE_MACAROON),
        )
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    return env


async def supervise(env: dict[str, str], with_simnet: bool) -> int:
    supervisor = Supervisor(env)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.request_stop)
    try:
        await supervisor.run(with_simnet)
    except Stopped:
        say("stopping...")
        return_code = 0
    except Failed as failure:
        say(f"ERROR: {failure}; stopping everything")
        return_code = 1
    else:
        return_code = 1
    finally:
        await supervisor.stop_all()
    say("stopped")
    return return_code


def main() -> int:
    with_simnet = not os.environ.get("LND_GRPC_HOST")
    env = child_env(dict(os.environ))  # may start services: before the event loop, it runs its own
    return asyncio.run(supervise(env, with_simnet))


if __name__ == "__main__":
    sys.exit(main())
