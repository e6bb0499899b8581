"""Row-change events: the worker announces, after commit, that an invoice or payment changed state.

The API waits on them (instead of polling) to answer a request within INVOICE_WAIT_S /
PAYMENT_WAIT_S, and streams them to clients over SSE. Events are hints: the row in Postgres is the
truth, so a lost event only means a 202 instead of a 201, never a wrong answer.

Channel ``lw:events``; message JSON ``{"type": "invoice"|"payment", "id": "<uuid>", "state": "...",
"userId": "<uuid>"}``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

CHANNEL = "lw:events"
EventType = Literal["invoice", "payment"]


@dataclass(frozen=True, slots=True)
class RowEvent:
    type: EventType
    id: uuid.UUID
    state: str
    user_id: uuid.UUID

    def encode(self) -> str:
        return json.dumps(
            {"type": self.type, "id": str(self.id), "state": self.state, "userId": str(self.user_id)}
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> RowEvent | None:
        try:
            data = json.loads(raw)
            return cls(
                type=data["type"],
                id=uuid.UUID(data["id"]),
                state=str(data["state"]),
                user_id=uuid.UUID(data["userId"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


async def publish(redis: Redis, event: RowEvent) -> None:
    """Announce a committed state change. Call only after the transaction has committed."""
    await redis.publish(CHANNEL, event.encode())
