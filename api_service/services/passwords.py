"""bcrypt hashing, always off the event loop.

bcrypt is slow on purpose (cost 12 ≈ 235 ms here); it releases the GIL, so it runs in a small
dedicated thread pool (usable CPUs - 1, at least 1). A dedicated pool keeps a burst of logins from
occupying the default executor that other code (DNS lookups, ``asyncio.to_thread``) relies on, and
queues the excess instead of letting it compete with the event loop for CPU.

Unknown users are checked against a dummy hash of the same cost, so the time a failed login takes
does not tell whether the name exists.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import bcrypt

MAX_PASSWORD_BYTES = 72

_dummy_hashes: dict[int, bytes] = {}


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (containers, taskset)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@functools.cache
def _executor() -> ThreadPoolExecutor:
    # Created on first use, never at import time. One CPU fewer than the process may use: the
    # event-loop thread keeps a core for itself, so a burst of logins cannot starve it of CPU.
    return ThreadPoolExecutor(max_workers=max(1, _usable_cpus() - 1), thread_name_prefix="bcrypt")


async def _run(function, *args):
    return await asyncio.get_running_loop().run_in_executor(_executor(), function, *args)


def _encode(password: str) -> bytes:
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        # Callers validate first (schemas.users.check_password); this guards bcrypt 5's ValueError.
        raise ValueError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    return encoded


def _hash_sync(password: bytes, cost: int) -> str:
    return bcrypt.hashpw(password, bcrypt.gensalt(rounds=cost)).decode("ascii")


def _check_sync(password: bytes, password_hash: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, password_hash)
    except ValueError:  # a malformed stored hash fails closed
        return False


async def hash_password(password: str, cost: int) -> str:
    """The bcrypt hash (``$2b$...``) of ``password``; raises ValueError over 72 bytes."""
    return await _run(_hash_sync, _encode(password), cost)


async def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches; False (never an exception) for over-long input or a bad hash."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        # Spend the same time as a real check so that this branch does not stand out.
        await _run(_check_sync, b"x", password_hash.encode("ascii", "replace"))
        return False
    return await _run(_check_sync, encoded, password_hash.encode("ascii", "replace"))


async def dummy_hash(cost: int) -> str:
    """A hash of a random password at ``cost``, computed once per cost and kept."""
    if cost not in _dummy_hashes:
        _dummy_hashes[cost] = (await hash_password(secrets.token_urlsafe(16), cost)).encode("ascii")
    return _dummy_hashes[cost].decode("ascii")


async def burn_verify(password: str, cost: int) -> bool:
    """Spend the time of a password check for a user that does not exist; always False."""
    await verify_password(password, await dummy_hash(cost))
    return False
