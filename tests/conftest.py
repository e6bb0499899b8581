"""Session set-up shared by every test: under pytest-xdist, each worker gets its own test database,
Redis db and run folder before any test module is imported (tests/support/env.py)."""

from tests.support import env


def pytest_configure(config: object) -> None:
    env.isolate_xdist_worker()
