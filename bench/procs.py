"""Child processes of the bench: start with a log file, wait until ready, always stop.

Each child runs in its own session (process group), so stopping it also stops what it spawned
(LNbits leaves a child holding its port after SIGTERM to the parent). Only the groups started here
are signalled, by their own id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    """The set of processes of one run; ``stop_all`` (also on exit of the ``with``) stops them in reverse."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            cwd=cwd or REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout_s: float = 8.0) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left after ``timeout_s``."""
        pgid = child.popen.pid  # start_new_session: the group id is the child's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            child.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        # The group may outlive its leader (LNbits' server child): make sure it is gone.
        deadline = time.monotonic() + 2.0
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(2.0)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def python_argv(*args: str) -> list[str]:
    """Run a module with this interpreter (the project's .venv when started by `make bench`)."""
    return [sys.executable, *args]


class StartError(RuntimeError):
    pass


async def wait_http(url: str, child: Child, timeout_s: float = 30.0, ok_status: int = 200) -> None:
    """Poll ``url`` until it answers ``ok_status``; fail early (with the log) if the child died."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartError(f"{child.name} exited ({child.popen.returncode}):\n{child.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == ok_status:
                        return
            await asyncio.sleep(0.1)
    raise StartError(f"{child.name} not ready at {url} within {timeout_s}s:\n{child.log_tail()}")


async def wait_files(paths: list[Path], child: Child, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise StartError(f"{child.name} exited ({child.popen.returncode}):\n{child.log_tail()}")
        if all(p.exists() and p.stat().st_size > 0 for p in paths):
            return
        await asyncio.sleep(0.1)
    raise StartError(f"{child.name}: {', '.join(map(str, paths))} not written within {timeout_s}s")


async def wait_port(port: int, child: Child, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise StartError(f"{child.name} exited ({child.popen.returncode}):\n{child.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise StartError(f"{child.name}: port {port} not open within {timeout_s}s")
