"""BOLT11 payment requests decoded into our own frozen value type.

The ``bolt11`` package does the bech32 and signature work; this module adds what it leaves out or gets
loose: the network from the HRP prefix (including simnet ``sb``, which the package does not know), an
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
    currency, network, amount_text = network_of_hrp(hrp)
    amount_msat = amount_msat_of(amount_text)
    try:
        parsed, payee = _decode_with_package(cleaned, hrp, currency, amount_text)
    except InvalidPaymentRequest:
        raise
    except Exception as exc:  # the package raises many types (bech32, bitstring, coincurve, its own)
        raise InvalidPaymentRequest(_describe(exc)) from None
    payment_hash = bytes.fromhex(parsed.payment_hash)
    if len(payment_hash) != 32:
        raise InvalidPaymentRequest("the payment hash must be 32 bytes")
    expiry_s = int(parsed.expiry)
    description_hash = bytes.fromhex(parsed.description_hash) if parsed.description_hash else None
    return DecodedPaymentRequest(
        payment_request=cleaned,
        network=network,
        payment_hash=payment_hash,
        amount_msat=amount_msat,
        timestamp=int(parsed.date),
        expiry_s=expiry_s,
        description=parsed.description,
        description_hash=description_hash,
        payee=payee,
        min_final_cltv_expiry=int(parsed.min_final_cltv_expiry),
    )


def _decode_with_package(cleaned: str, hrp: str, currency: str, amount_text: str):
    import bolt11
    from bech32 import bech32_decode, bech32_encode
    from bolt11.models.signature import Signature

    if currency != "sb":
        parsed = bolt11.decode(cleaned)
        return parsed, parsed.payee
    # The package only knows bc/bcrt/tb/tbs. For simnet, decode the same data under a regtest HRP,
    # then recover the payee from the signature over the *real* HRP (the one that was signed).
    real_hrp, data = bech32_decode(cleaned)
    if real_hrp is None or data is None:
        raise InvalidPaymentRequest("invalid bech32 checksum")
    parsed = bolt11.decode(bech32_encode("lnbcrt" + amount_text, data), ignore_exceptions=False)
    if parsed.signature is None:
        raise InvalidPaymentRequest("the payment request has no signature")
    signature = Signature(
        hrp=real_hrp,
        signing_data=parsed.signature.signing_data,
        signature_data=parsed.signature.signature_data,
    )
    return parsed, signature.recover_public_key()


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    known = {
        "Bolt11Bech32InvalidException": "invalid bech32 string or checksum",
        "Bolt11SignatureTooShortException": "the payment request is too short",
        "Bolt11SignatureVerifyException": "the signature does not match the payee",
        "Bolt11NoPaymentHashException": "the payment request has no payment hash",
        "Bolt11NoPaymentSecretException": "the payment request has no payment secret",
        "Bolt11DescriptionException": "the payment request needs exactly one description or description hash",
        "Bolt11HrpInvalidException": "unknown network prefix",
        "Bolt11AmountInvalidException": "malformed amount in the payment request",
    }
    return known.get(name, "malformed payment request")
