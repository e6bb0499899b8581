"""What the two /metrics endpoints share: who may scrape, and the text they answer.

The API serves its HTTP metrics at ``/metrics`` on the API port and each worker serves its own at
``WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics``. Both ask for ``Authorization: Bearer
$METRICS_TOKEN`` when the token is set (required outside development: the money gauges tell a reader
what the operator holds), and compare it in constant time.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import SecretStr


def scrape_allowed(authorization: str | None, token: SecretStr | None) -> bool:
    """True when no token is configured, or the header carries exactly ``Bearer <token>``."""
    if token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus' text format, and the Content-Type to send it with."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
