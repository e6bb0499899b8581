"""Our own frozen value types at the Lightning boundary: never protobuf messages past this line."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class InvoiceState(enum.Enum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELED = "canceled"
    ACCEPTED = "accepted"


class PaymentStatus(enum.Enum):
    INITIATED = "initiated"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    identity_pubkey: str
    alias: str
    network: str  # "regtest", "testnet", "mainnet", ...
    block_height: int
    version: str
    synced_to_chain: bool
    num_active_channels: int


@dataclass(frozen=True, slots=True)
class AddedInvoice:
    payment_hash: bytes
    payment_request: str
    add_index: int
    payment_addr: bytes


@dataclass(frozen=True, slots=True)
class Invoice:
    payment_hash: bytes
    payment_request: str
    memo: str
    value_msat: int
    amt_paid_msat: int
    state: InvoiceState
    add_index: int
    settle_index: int
    creation_date: int  # unix seconds
    settle_date: int  # unix seconds, 0 while unsettled
    expiry_s: int
    preimage: bytes | None
    description_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    payment_hash: bytes
    status: PaymentStatus
    value_msat: int
    fee_msat: int
    preimage: bytes | None  # None unless SUCCEEDED
    failure_reason: str | None  # LND's PaymentFailureReason name without prefix, e.g. "NO_ROUTE"
    payment_index: int
    # When LND created this attempt: a payment re-sent after a failure is a new attempt, with a new
    # creation time, so it tells one attempt of a hash from another.
    creation_time_ns: int = 0


@dataclass(frozen=True, slots=True)
class ChannelBalance:
    local_msat: int
    remote_msat: int
    unsettled_local_msat: int
    pending_open_local_msat: int


@dataclass(frozen=True, slots=True)
class WalletBalance:
    total_sat: int
    confirmed_sat: int
    unconfirmed_sat: int


@dataclass(frozen=True, slots=True)
class DecodedPayReq:
    destination: str  # hex pubkey
    payment_hash: bytes
    amount_msat: int  # 0 for a zero-amount invoice
    timestamp: int
    expiry_s: int
    description: str
    description_hash: bytes | None
    payment_addr: bytes
    cltv_expiry: int
