"""All routes, by resource module. Each module exposes ``setup(app)``."""

from __future__ import annotations

from aiohttp import web

from api_service import health, lndhub, lnurl
from api_service.handlers import (
    admin,
    auth,
    console,
    docs,
    invoices,
    metrics,
    payments,
    reconciliation,
    stream,
    treasury,
    users,
    wallet,
    webhooks,
)


def setup(app: web.Application) -> None:
    health.setup(app)
    auth.setup(app)
    users.setup(app)
    docs.setup(app)
    wallet.setup(app)
    invoices.setup(app)
    payments.setup(app)
    stream.setup(app)
    admin.setup(app)
    console.setup(app)
    treasury.setup(app)
    reconciliation.setup(app)
    lndhub.setup(app)
    lnurl.setup(app)
    webhooks.setup(app)
    metrics.setup(app)
