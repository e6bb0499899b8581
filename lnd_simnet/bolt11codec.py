"""A fast BOLT11 encoder/decoder for the simnet (the ``bolt11`` package needs ~4 ms per encode,
too slow for >1000 AddInvoice/s). The output is checked against ``bolt11.decode`` in the tests.

Tag order follows LND's zpay32 (p, d|h, c, x, s, 9); LND omits ``n`` and so do we: the payee key
is recovered from the recoverable signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_INDEX = {c: i for i, c in enumerate(CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_NETWORK_PREFIXES = (
    ("bcrt", "regtest"),
    ("tbs", "signet"),
    ("tb", "testnet"),
    ("bc", "mainnet"),
    ("sb", "simnet"),
)
# hrp multiplier -> millisatoshi per unit (p is 0.1 msat: handled apart)
_UNITS = (("", 100_000_000_000), ("m", 100_000_000), ("u", 100_000), ("n", 100))
_UNIT_MSAT = {"m": 100_000_000, "u": 100_000, "n": 100}
DEFAULT_EXPIRY_S = 3600
DEFAULT_CLTV = 18  # BOLT11 default when `c` is absent
# LND's default invoice features: var_onion_optin (8) and payment_addr (14) required,
# basic_mpp (17) and route blinding (25) optional.
LND_FEATURE_BITS = (8, 14, 17, 25)


class PayReqError(ValueError):
    """An unparseable payment request (text mirrors LND's zpay32 errors where it can)."""


@dataclass(frozen=True, slots=True)
class PayReq:
    network: str
    amount_msat: int  # 0 when absent
    timestamp: int
    payment_hash: bytes
    payment_addr: bytes
    description: str
    description_hash: bytes | None
    expiry_s: int
    cltv_expiry: int
    features: tuple[int, ...]
    payee: bytes  # 33-byte compressed pubkey


def _gen_table() -> tuple[int, ...]:
    table = []
    for b in range(32):
        x = 0
        for i in range(5):
            if (b >> i) & 1:
                x ^= _GEN[i]
        table.append(x)
    return tuple(table)


_GEN_TABLE = _gen_table()


def _polymod(values: list[int]) -> int:
    chk = 1
    table = _GEN_TABLE
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to5(data: bytes) -> list[int]:
    n = int.from_bytes(data, "big") if data else 0
    bits = len(data) * 8
    groups = (bits + 4) // 5
    n <<= groups * 5 - bits
    return [(n >> (5 * (groups - 1 - i))) & 31 for i in range(groups)]


def _from5(groups: list[int]) -> bytes:
    """5-bit groups -> bytes, dropping the incomplete trailing bits."""
    n = 0
    for g in groups:
        n = (n << 5) | g
    bits = len(groups) * 5
    nbytes = bits // 8
    return (n >> (bits - nbytes * 8)).to_bytes(nbytes, "big")


def _int5(value: int) -> list[int]:
    out = []
    while value:
        out.append(value & 31)
        value >>= 5
    return out[::-1]


def _tag(char: str, groups: list[int]) -> list[int]:
    n = len(groups)
    return [_CHAR_INDEX[char], n >> 5, n & 31, *groups]


def _feature_groups(bits: tuple[int, ...]) -> list[int]:
    value = 0
    for b in bits:
        value |= 1 << b
    return _int5(value)


def encode_amount(amount_msat: int) -> str:
    if amount_msat <= 0:
        return ""
    for unit, per in _UNITS:
        if amount_msat % per == 0:
            return f"{amount_msat // per}{unit}"
    return f"{amount_msat * 10}p"


def encode(
    key: coincurve.PrivateKey,
    *,
    currency: str,
    amount_msat: int,
    timestamp: int,
    payment_hash: bytes,
    payment_addr: bytes,
    description: str = "",
    description_hash: bytes | None = None,
    expiry_s: int,
    cltv_expiry: int,
    features: tuple[int, ...] = LND_FEATURE_BITS,
) -> str:
    """A signed BOLT11 string, e.g. ``lnbcrt10u1p...``."""
    hrp = "ln" + currency + encode_amount(amount_msat)
    data = [(timestamp >> (5 * (6 - i))) & 31 for i in range(7)]
    data += _tag("p", _to5(payment_hash))
    if description_hash is not None:
        data += _tag("h", _to5(description_hash))
    else:
        data += _tag("d", _to5(description.encode()))
    data += _tag("c", _int5(cltv_expiry))
    data += _tag("x", _int5(expiry_s))
    data += _tag("s", _to5(payment_addr))
    if features:
        data += _tag("9", _feature_groups(features))
    sig = key.sign_recoverable(hrp.encode() + _groups_to_padded_bytes(data))
    data += _to5(sig)
    checksum = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join([CHARSET[d] for d in data])


def _groups_to_padded_bytes(groups: list[int]) -> bytes:
    n = 0
    for g in groups:
        n = (n << 5) | g
    bits = len(groups) * 5
    pad = (-bits) % 8
    return (n << pad).to_bytes((bits + pad) // 8, "big")


def _split_hrp(hrp: str) -> tuple[str, str, int]:
    if not hrp.startswith("ln"):
        raise PayReqError('prefix should be "ln"')
    rest = hrp[2:]
    for prefix, network in _NETWORK_PREFIXES:
        if rest.startswith(prefix):
            return prefix, network, _decode_amount(rest[len(prefix) :])
    raise PayReqError(f"unknown network prefix in {hrp!r}")


def _decode_amount(text: str) -> int:
    if not text:
        return 0
    unit = text[-1]
    try:
        if unit.isdigit():
            return int(text) * 100_000_000_000
        if unit == "p":
            value = int(text[:-1])
            if value % 10:
                raise PayReqError("amount is outside valid range")
            return value // 10
        return int(text[:-1]) * _UNIT_MSAT[unit]
    except (KeyError, ValueError) as exc:
        raise PayReqError(f"invalid amount {text!r}") from exc


def decode(text: str) -> PayReq:
    """Parse and verify a BOLT11 string; raises PayReqError."""
    s = text.strip()
    if s.lower() != s and s.upper() != s:
        raise PayReqError("string not all lowercase or all uppercase")
    s = s.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s):
        raise PayReqError(f"invalid index of 1: {pos}")
    hrp = s[:pos]
    try:
        data = [_CHAR_INDEX[c] for c in s[pos + 1 :]]
    except KeyError as exc:
        raise PayReqError(f"invalid character not part of charset: {exc.args[0]!r}") from exc
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise PayReqError("checksum failed")
    data = data[:-6]
    if len(data) < 7 + 104:
        raise PayReqError("data too short")
    _, network, amount_msat = _split_hrp(hrp)
    body, sig = data[:-104], _from5(data[-104:])
    fields = _parse_tags(body[7:])
    msg = hrp.encode() + _groups_to_padded_bytes(body)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig, msg)
    except Exception as exc:
        raise PayReqError("invalid signature") from exc
    payee = pub.format()
    if "n" in fields and fields["n"] != payee:
        raise PayReqError("invalid invoice signature")
    if "p" not in fields:
        raise PayReqError("invoice must have a payment hash")
    timestamp = 0
    for g in body[:7]:
        timestamp = (timestamp << 5) | g
    return PayReq(
        network=network,
        amount_msat=amount_msat,
        timestamp=timestamp,
        payment_hash=fields["p"],
        payment_addr=fields.get("s", b""),
        description=fields.get("d", ""),
        description_hash=fields.get("h"),
        expiry_s=fields.get("x", DEFAULT_EXPIRY_S),
        cltv_expiry=fields.get("c", DEFAULT_CLTV),
        features=fields.get("9", ()),
        payee=payee,
    )


def _parse_tags(groups: list[int]) -> dict:
    fields: dict = {}
    i = 0
    while i + 3 <= len(groups):
        char = CHARSET[groups[i]]
        length = (groups[i + 1] << 5) | groups[i + 2]
        val = groups[i + 3 : i + 3 + length]
        i += 3 + length
        if char in fields:
            continue  # BOLT11: use the first occurrence
        if char in "psh" and length == 52:
            fields[char] = _from5(val)
        elif char == "n" and length == 53:
            fields[char] = _from5(val)
        elif char == "d":
            fields[char] = _from5(val).decode("utf-8", errors="replace")
        elif char in "xc":
            n = 0
            for g in val:
                n = (n << 5) | g
            fields[char] = n
        elif char == "9":
            n = 0
            for g in val:
                n = (n << 5) | g
            fields[char] = tuple(b for b in range(n.bit_length()) if n >> b & 1)
    return fields
