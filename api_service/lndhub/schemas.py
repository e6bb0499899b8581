"""LndHub request and response models: snake_case as the protocol has it, unknown fields ignored (as
both BlueWallet's server and lndhub.go do), amounts as numbers or decimal strings.

The response models document the wire shapes in the OpenAPI document; handlers build plain dicts
(``views``) that match them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BeforeValidator, Field, StrictStr, WithJsonSchema

from api_service.schemas.wallet import MEMO_MAX_BYTES
from shared.bolt11 import MAX_PAYMENT_REQUEST_CHARS

MAX_LIST = 1000
_DIGITS = re.compile(r"^\s*[0-9]{1,19}\s*$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{64}$")


def _whole_sats(value: Any) -> Any:
    """A JSON number or a decimal string (forms send nothing else) of whole satoshis."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number of satoshis")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    if isinstance(value, int):
        return value
    raise ValueError("must be a whole number of satoshis")


def _optional_sats(value: Any) -> Any:
    # BlueWallet sends amount 0 (or a form sends "") when the invoice carries its own amount.
    if value is None or value == "" or value == 0 or value == "0":
        return None
    sats = _whole_sats(value)
    if sats < 1:
        raise ValueError("must be a positive number of satoshis")
    return sats


def _memo(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value.encode("utf-8")) > MEMO_MAX_BYTES:
        raise ValueError(f"must be at most {MEMO_MAX_BYTES} bytes in UTF-8")
    return value


def _hash_hex(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEX32.match(value):
        raise ValueError("must be 64 hex characters")
    return bytes.fromhex(value)


_SATS_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]}
Sats = Annotated[int, BeforeValidator(_whole_sats), Field(ge=1), WithJsonSchema(_SATS_SCHEMA)]
OptionalSats = Annotated[
    int | None,
    BeforeValidator(_optional_sats),
    WithJsonSchema({**_SATS_SCHEMA, "description": "only for a zero-amount invoice; else ignored"}),
]
Memo = Annotated[str, BeforeValidator(_memo), WithJsonSchema({"type": "string", "maxLength": MEMO_MAX_BYTES})]
DescriptionHash = Annotated[
    bytes | None,
    BeforeValidator(_hash_hex),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "hex sha256"}),
]


class LndHubModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")


# ---- requests ---------------------------------------------------------------------------------


class CreateBody(LndHubModel):
    partnerid: StrictStr | None = Field(None, max_length=255)
    accounttype: StrictStr | None = Field(None, max_length=255)


class AuthQuery(LndHubModel):
    type: Literal["auth", "refresh_token"] | None = Field(
        None, description="auth: login + password; refresh_token: refresh_token (default: by the body)"
    )


class AuthBody(LndHubModel):
    login: StrictStr | None = Field(None, max_length=64)
    password: StrictStr | None = Field(None, max_length=1024)
    refresh_token: StrictStr | None = Field(None, max_length=512)


class AddInvoiceBody(LndHubModel):
    amt: Sats = Field(description="satoshis, 1..MAX_INVOICE_SAT")
    memo: Memo = ""
    description_hash: DescriptionHash = None


class PayInvoiceBody(LndHubModel):
    invoice: StrictStr = Field(min_length=1, max_length=MAX_PAYMENT_REQUEST_CHARS + len("lightning:"))
    amount: OptionalSats = None


class TxsQuery(LndHubModel):
    limit: int = Field(MAX_LIST, ge=0, le=MAX_LIST, description="0: all (at most 1000)")
    offset: int = Field(0, ge=0, le=1_000_000)


class InvoicesQuery(LndHubModel):
    limit: int = Field(MAX_LIST, ge=0, le=MAX_LIST, description="the newest N; 0: all (at most 1000)")


class DecodeQuery(LndHubModel):
    invoice: StrictStr = Field(min_length=1, max_length=MAX_PAYMENT_REQUEST_CHARS + len("lightning:"))


# ---- responses (documentation of the wire shapes) --------------------------------------------


class BufferOut(pydantic.BaseModel):
    """A Node Buffer as JSON: the bytes as a list of integers."""

    type: Literal["Buffer"]
    data: list[int]


class CreateOut(pydantic.BaseModel):
    login: str
    password: str


class TokensOut(pydantic.BaseModel):
    access_token: str
    refresh_token: str


class AddInvoiceOut(pydantic.BaseModel):
    r_hash: BufferOut
    payment_request: str
    pay_req: str
    add_index: str
    payment_hash: str = Field(description="hex")


class RouteOut(pydantic.BaseModel):
    total_amt: int = Field(description="sat, fees included (LND's Route)")
    total_fees: int
    total_amt_msat: str
    total_fees_msat: str
    total_time_lock: int
    hops: list[Any]


class PayInvoiceOut(pydantic.BaseModel):
    payment_error: str
    payment_preimage: BufferOut
    payment_hash: BufferOut
    payment_route: RouteOut
    pay_req: str
    payment_request: str
    num_satoshis: int
    description: str
    description_hash: str


class BalanceInner(pydantic.BaseModel):
    AvailableBalance: int


class BalanceOut(pydantic.BaseModel):
    BTC: BalanceInner


class TxOut(pydantic.BaseModel):
    type: Literal["paid_invoice"]
    value: int = Field(description="sat spent, fee included (rounded up)")
    fee: int
    timestamp: int
    memo: str
    payment_preimage: str | None = Field(description="hex; null while in transition")
    payment_hash: BufferOut
    r_hash: BufferOut


class UserInvoiceOut(pydantic.BaseModel):
    r_hash: BufferOut
    payment_request: str
    pay_req: str
    add_index: str
    description: str
    payment_hash: str
    ispaid: bool | None = Field(None, description="omitted for unpaid invoices older than 5 days")
    amt: int
    expire_time: int
    timestamp: int
    type: Literal["user_invoice"]


class CheckPaymentOut(pydantic.BaseModel):
    paid: bool


class ChainOut(pydantic.BaseModel):
    chain: str
    network: str


class InfoOut(pydantic.BaseModel):
    identity_pubkey: str
    alias: str
    block_height: int
    synced_to_chain: bool
    num_active_channels: int
    version: str
    chains: list[ChainOut]
    uris: list[str]


class DecodedOut(pydantic.BaseModel):
    destination: str
    payment_hash: str
    num_satoshis: str
    num_msat: str
    timestamp: str
    expiry: str
    description: str
    description_hash: str
    fallback_addr: str
    cltv_expiry: str
    route_hints: list[Any]
    features: dict[str, Any]
