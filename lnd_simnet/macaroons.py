"""LND-layout V2 binary macaroons: minted and verified with a node-specific root key.

Layout (libmacaroons V2): 0x02, field 1 location "lnd", field 2 identifier, EOS, caveats
(each: [location] identifier [vid] EOS), EOS, field 6 signature. The hex therefore starts
``0201036c6e64`` like LND's. The identifier is LND's: version byte 3 + a protobuf MacaroonId
{nonce=1, storageId=2 ("0"), ops=3 [{entity=1, actions=2}]}. The signature chain is
HMAC-SHA256(HMAC-SHA256("macaroons-key-generator", root_key), id), then one HMAC per
first-party caveat.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

LOCATION = b"lnd"
_KEY_GEN = b"macaroons-key-generator"
_FIELD_EOS, _FIELD_LOCATION, _FIELD_IDENTIFIER, _FIELD_VID, _FIELD_SIGNATURE = 0, 1, 2, 4, 6

ENTITIES = ("address", "info", "invoices", "macaroon", "message", "offchain", "onchain", "peers", "signer")
ADMIN_OPS = tuple((e, a) for e in ENTITIES for a in ("read", "write"))
INVOICE_OPS = (
    ("address", "read"),
    ("address", "write"),
    ("invoices", "read"),
    ("invoices", "write"),
    ("onchain", "read"),
)
READONLY_OPS = tuple((e, "read") for e in ENTITIES)


class MacaroonError(Exception):
    """Verification failed; ``str()`` is LND's error text."""


@dataclass(frozen=True, slots=True)
class Macaroon:
    identifier: bytes
    caveats: tuple[bytes, ...]
    signature: bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf):
            raise MacaroonError("unexpected end of macaroon")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _identifier(ops: tuple[tuple[str, str], ...]) -> bytes:
    grouped: dict[str, list[str]] = {}
    for entity, action in ops:
        grouped.setdefault(entity, []).append(action)
    body = _pb_bytes(1, os.urandom(32)) + _pb_bytes(2, b"0")
    for entity, actions in grouped.items():
        op = _pb_bytes(1, entity.encode()) + b"".join(_pb_bytes(2, a.encode()) for a in actions)
        body += _pb_bytes(3, op)
    return b"\x03" + body


def _ops_from_identifier(identifier: bytes) -> frozenset[tuple[str, str]]:
    if not identifier or identifier[0] != 3:
        raise MacaroonError("cannot get macaroon: unknown macaroon identifier version")
    ops: set[tuple[str, str]] = set()
    for field, value in _pb_fields(identifier[1:]):
        if field == 2 and value != b"0":
            raise MacaroonError(
                f"cannot get macaroon: root key with id {value.decode(errors='replace')} doesn't exist"
            )
        if field == 3:
            entity, actions = "", []
            for f, v in _pb_fields(value):
                if f == 1:
                    entity = v.decode()
                elif f == 2:
                    actions.append(v.decode())
            ops.update((entity, a) for a in actions)
    return frozenset(ops)


def _pb_fields(buf: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        if key & 7 != 2:
            raise MacaroonError("cannot get macaroon: malformed identifier")
        n, i = _read_varint(buf, i)
        out.append((key >> 3, buf[i : i + n]))
        i += n
    return out


def _sign(root_key: bytes, identifier: bytes, caveats: tuple[bytes, ...]) -> bytes:
    key = hmac.new(_KEY_GEN, root_key, hashlib.sha256).digest()
    sig = hmac.new(key, identifier, hashlib.sha256).digest()
    for caveat in caveats:
        sig = hmac.new(sig, caveat, hashlib.sha256).digest()
    return sig


def _field(ftype: int, value: bytes) -> bytes:
    return bytes([ftype]) + _varint(len(value)) + value


def serialize(m: Macaroon) -> bytes:
    out = b"\x02" + _field(_FIELD_LOCATION, LOCATION) + _field(_FIELD_IDENTIFIER, m.identifier) + b"\x00"
    for caveat in m.caveats:
        out += _field(_FIELD_IDENTIFIER, caveat) + b"\x00"
    return out + b"\x00" + _field(_FIELD_SIGNATURE, m.signature)


def parse(raw: bytes) -> Macaroon:
    if not raw or raw[0] != 2:
        raise MacaroonError("cannot get macaroon: unsupported macaroon version")
    i = 1

    def read_section() -> dict[int, bytes]:
        nonlocal i
        fields: dict[int, bytes] = {}
        while True:
            if i >= len(raw):
                raise MacaroonError("cannot get macaroon: unexpected end of data")
            ftype = raw[i]
            i += 1
            if ftype == _FIELD_EOS:
                return fields
            n, i = _read_varint(raw, i)
            fields[ftype] = raw[i : i + n]
            i += n

    header = read_section()
    caveats = []
    while i < len(raw) and raw[i] != _FIELD_EOS:
        section = read_section()
        if _FIELD_VID in section:
            raise MacaroonError("verification failed: third party caveats are not supported")
        caveats.append(section.get(_FIELD_IDENTIFIER, b""))
    i += 1
    if i >= len(raw) or raw[i] != _FIELD_SIGNATURE:
        raise MacaroonError("cannot get macaroon: no signature")
    n, j = _read_varint(raw, i + 1)
    if _FIELD_IDENTIFIER not in header:
        raise MacaroonError("cannot get macaroon: no identifier")
    return Macaroon(header[_FIELD_IDENTIFIER], tuple(caveats), raw[j : j + n])


def mint(root_key: bytes, ops: tuple[tuple[str, str], ...]) -> bytes:
    """A serialized V2 macaroon granting ``ops`` ((entity, action) pairs)."""
    identifier = _identifier(ops)
    return serialize(Macaroon(identifier, (), _sign(root_key, identifier, ())))


def verify(root_key: bytes, raw: bytes) -> frozenset[tuple[str, str]]:
    """The permissions of a valid macaroon; raises MacaroonError with LND's text otherwise."""
    m = parse(raw)
    ops = _ops_from_identifier(m.identifier)
    if not hmac.compare_digest(_sign(root_key, m.identifier, m.caveats), m.signature):
        raise MacaroonError("verification failed: signature mismatch after caveat verification")
    return ops
