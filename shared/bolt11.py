"""BOLT11 payment requests decoded into our own frozen value type.

bech32 checks the checksum and coincurve (libsecp256k1) the signature; this module reads the fields
(see "the data part" below) and adds what the ``bolt11`` package leaves out or gets loose: the
network from the HRP prefix (including simnet ``sb``, which the package does not know), an
exact millisatoshi amount (a ``p`` amount that is not a whole msat is refused, not truncated), a bound on
the input length, and one exception type for every way a string can fail to be a payment request.

Nothing here knows about settings or HTTP: callers compare ``network`` with their own and decide.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_PAYMENT_REQUEST_CHARS = 7089  # the capacity of an alphanumeric QR code: a BOLT11 string is meant to fit

# Longest prefix first: "bcrt" before "bc", "tbs" before "tb".
_NETWORK_PREFIXES: tuple[tuple[str, str], ...] = (
    ("bcrt", "regtest"),
    ("tbs", "signet"),
    ("tb", "testnet"),
    ("bc", "mainnet"),
    ("sb", "simnet"),
)
_MSAT_PER_BTC = Decimal(100_000_000_000)
_MULTIPLIERS = {
    "m": Decimal("0.001"),
    "u": Decimal("0.000001"),
    "n": Decimal("0.000000001"),
    "p": Decimal("0.000000000001"),
}
_AMOUNT = re.compile(r"^([0-9]+)([munp]?)$")


class InvalidPaymentRequest(ValueError):
    """The text is not a valid BOLT11 payment request; the message says why (safe to show a user)."""


@dataclass(frozen=True, slots=True)
class DecodedPaymentRequest:
    payment_request: str  # normalised: lower case, no "lightning:" prefix
    network: str  # regtest | testnet | signet | mainnet | simnet
    payment_hash: bytes  # 32 bytes
    amount_msat: int | None  # None for a zero-amount ("any amount") invoice
    timestamp: int  # unix seconds
    expiry_s: int
    description: str | None
    description_hash: bytes | None
    payee: str  # 33-byte compressed public key, hex
    min_final_cltv_expiry: int

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry_s

    def is_expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def network_of_hrp(hrp: str) -> tuple[str, str, str]:
    """(currency prefix, network name, amount text) of a human-readable part like ``lnbcrt10u``."""
    if not hrp.startswith("ln"):
        raise InvalidPaymentRequest("not a Lightning payment request (it must start with 'ln')")
    rest = hrp[2:]
    for prefix, network in _NETWORK_PREFIXES:
        if rest.startswith(prefix):
            return prefix, network, rest[len(prefix) :]
    raise InvalidPaymentRequest("unknown network prefix")


def amount_msat_of(text: str) -> int | None:
    """The exact amount of an HRP amount field in msat (None when absent). BOLT11: a reader must fail
    on a ``p`` amount that is not a multiple of 10 pico-BTC, i.e. not a whole millisatoshi."""
    if text == "":
        return None
    match = _AMOUNT.match(text)
    if match is None:
        raise InvalidPaymentRequest("malformed amount in the payment request")
    digits, unit = match.groups()
    try:
        btc = Decimal(digits) * _MULTIPLIERS[unit] if unit else Decimal(digits)
    except InvalidOperation:
        raise InvalidPaymentRequest("malformed amount in the payment request") from None
    msat = btc * _MSAT_PER_BTC
    if msat != msat.to_integral_value():
        raise InvalidPaymentRequest("the amount is not a whole number of millisatoshis")
    if msat <= 0:
        raise InvalidPaymentRequest("the amount must be positive")
    return int(msat)


def normalize(text: str) -> str:
    """The canonical spelling of a payment request: no surrounding space, no ``lightning:`` URI
    prefix, lower case (bech32 is case-insensitive). A string that mixes cases is returned as it
    is (without the prefix): :func:`decode` refuses it."""
    cleaned = text.strip()
    if cleaned.lower().startswith("lightning:"):
        cleaned = cleaned[len("lightning:") :]
    if cleaned == cleaned.upper():
        return cleaned.lower()
    return cleaned


def decode(text: str) -> DecodedPaymentRequest:
    """Decode a BOLT11 string and check its signature. Raises InvalidPaymentRequest, nothing else."""
    if not isinstance(text, str):
        raise InvalidPaymentRequest("the payment request must be a string")
    cleaned = normalize(text)
    if not cleaned:
        raise InvalidPaymentRequest("the payment request is empty")
    if len(cleaned) > MAX_PAYMENT_REQUEST_CHARS:
        raise InvalidPaymentRequest(
            f"the payment request is longer than {MAX_PAYMENT_REQUEST_CHARS} characters"
        )
    if not cleaned.isascii():
        raise InvalidPaymentRequest("the payment request contains non-ASCII characters")
    if cleaned != cleaned.lower() and cleaned != cleaned.upper():
        raise InvalidPaymentRequest("the payment request mixes upper and lower case")
    cleaned = cleaned.lower()
    separator = cleaned.rfind("1")
    if separator < 1:
        raise InvalidPaymentRequest("not a bech32 string")
    hrp = cleaned[:separator]
    _, network, amount_text = network_of_hrp(hrp)
    amount_msat = amount_msat_of(amount_text)
    fields = _decode_fields(cleaned)
    return DecodedPaymentRequest(
        payment_request=cleaned,
        network=network,
        payment_hash=fields.payment_hash,
        amount_msat=amount_msat,
        timestamp=fields.timestamp,
        expiry_s=fields.expiry_s,
        description=fields.description,
        description_hash=fields.description_hash,
        payee=fields.payee,
        min_final_cltv_expiry=fields.min_final_cltv_expiry,
    )


# ---- the data part ------------------------------------------------------------------------------
#
# bech32 (the checksum) and coincurve (libsecp256k1: signature recovery and verification) do the
# standard work; what is left is reading 5-bit words. The ``bolt11`` package reads them through
# bitstring one 5-bit pack at a time (~10 ms per payment request); the same reading over Python
# integers takes well under a millisecond. The rules are the package's and BOLT11's (a reader
# skips unknown fields and p/h/s/n fields of the wrong length, keeps the first of each, takes
# exactly one of d or h, requires p and s, checks the signature against n or recovers the payee);
# tests/unit/test_bolt11.py compares both decoders on generated payment requests.

_SIGNATURE_WORDS = 104  # 65 bytes = 520 bits
_TIMESTAMP_WORDS = 7  # 35 bits
_DEFAULT_EXPIRY_S = 3600
_DEFAULT_MIN_FINAL_CLTV = 18
_TAG_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


@dataclass(frozen=True, slots=True)
class _Fields:
    timestamp: int
    payment_hash: bytes
    expiry_s: int
    description: str | None
    description_hash: bytes | None
    payee: str
    min_final_cltv_expiry: int


def _uint(words: list[int]) -> int:
    value = 0
    for word in words:
        value = (value << 5) | word
    return value


def _to_bytes(words: list[int]) -> bytes:
    """The words' bits as bytes, a last partial byte dropped (as BOLT11 readers do)."""
    bits = 5 * len(words)
    return (_uint(words) >> (bits % 8)).to_bytes(bits // 8, "big")


def _signed_bytes(words: list[int]) -> bytes:
    """The words' bits as bytes, zero-padded to a whole byte: what the signature covers."""
    bits = 5 * len(words)
    pad = -bits % 8
    return (_uint(words) << pad).to_bytes((bits + pad) // 8, "big")


def _decode_fields(cleaned: str) -> _Fields:
    from bech32 import bech32_decode
    from coincurve import PublicKey, verify_signature
    from coincurve.ecdsa import cdata_to_der, deserialize_recoverable, recoverable_convert

    hrp, words = bech32_decode(cleaned)
    if hrp is None or words is None:
        raise InvalidPaymentRequest("invalid bech32 string or checksum")
    if len(words) < _SIGNATURE_WORDS + _TIMESTAMP_WORDS:
        raise InvalidPaymentRequest("the payment request is too short")
    data, signature = words[:-_SIGNATURE_WORDS], _to_bytes(words[-_SIGNATURE_WORDS:])
    tags: dict[str, list[int]] = {}
    position = _TIMESTAMP_WORDS
    while position < len(data):
        if position + 3 > len(data):
            raise InvalidPaymentRequest("malformed payment request")
        tag = _TAG_CHARSET[data[position]]
        length = data[position + 1] * 32 + data[position + 2]
        field = data[position + 3 : position + 3 + length]
        if len(field) != length:
            raise InvalidPaymentRequest("malformed payment request")
        position += 3 + length
        wanted = {"p": 52, "h": 52, "s": 52, "n": 53}.get(tag, length)
        if length == wanted and tag not in tags and not (tag in "dh" and ("d" in tags or "h" in tags)):
            tags[tag] = field
    if "p" not in tags:
        raise InvalidPaymentRequest("the payment request has no payment hash")
    if "s" not in tags:
        raise InvalidPaymentRequest("the payment request has no payment secret")
    if "d" not in tags and "h" not in tags:
        raise InvalidPaymentRequest("the payment request needs exactly one description or description hash")
    message = hrp.encode() + _signed_bytes(data)
    try:
        if "n" in tags:
            payee = _to_bytes(tags["n"])
            der = cdata_to_der(recoverable_convert(deserialize_recoverable(signature)))
            if not verify_signature(der, message, payee):
                raise InvalidPaymentRequest("the signature does not match the payee")
        else:
            payee = PublicKey.from_signature_and_message(signature, message).format(compressed=True)
        description = _to_bytes(tags["d"]).decode() if "d" in tags else None
    except InvalidPaymentRequest:
        raise
    except Exception:  # coincurve's and UTF-8's errors: a signature or text that is not one
        raise InvalidPaymentRequest(
            "the signature does not match the payee" if "n" in tags else "malformed payment request"
        ) from None
    return _Fields(
        timestamp=_uint(data[:_TIMESTAMP_WORDS]),
        payment_hash=_to_bytes(tags["p"]),
        expiry_s=_uint(tags["x"]) if "x" in tags else _DEFAULT_EXPIRY_S,
        description=description,
        description_hash=_to_bytes(tags["h"]) if "h" in tags else None,
        payee=payee.hex(),
        min_final_cltv_expiry=_uint(tags["c"]) if "c" in tags else _DEFAULT_MIN_FINAL_CLTV,
    )
