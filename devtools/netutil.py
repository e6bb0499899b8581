"""Small socket helpers shared by the devtools: free ports, TCP probes, waiting with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when `port` can be bound on `host`, so a private server may take it.

    SO_REUSEADDR, like the servers themselves: connections of a stopped server lingering in
    TIME_WAIT must not make its old port look taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds within `timeout_s`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], deadline_s: float, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it is true or `deadline_s` seconds have passed; return the last result."""
    end = time.monotonic() + deadline_s
    while True:
        if condition():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval_s)
