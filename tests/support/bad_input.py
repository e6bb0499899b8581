"""Bad input for any documented operation, derived from the OpenAPI registry (no tests here).

:func:`cases` turns one :class:`api_service.openapi.Operation` into requests that must not succeed,
or at least must not crash: wrong types, empty, zero, negative and huge values, overlong strings and
malformed ids in every path parameter, query parameter and body field the registry names; bad JSON,
wrong content types, an over-size body, unknown fields; missing, malformed, expired and foreign
tokens. Each :class:`Case` says whether it *must* be refused (``must_fail``: the route's own model
refuses it, or it is not a valid request at all) and, where the answer is fixed, which statuses may
come back. A value the model accepts (an empty memo, a zero fee limit) may succeed; it still must
not be a 5xx.

The sweep that sends them lives in ``tests/api/test_bad_input_sweep.py``; :func:`state_digest` is
its "nothing changed" witness.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import jwt
import pydantic

from api_service.openapi import Operation
from shared.db.models import Base

JSON = "application/json"
NOT_JSON = ("text/plain", "application/x-www-form-urlencoded")  # and none: aiohttp sends octet-stream

# Already percent-encoded path segments (never containing "/": that would route elsewhere).
BAD_PATH_SEGMENTS = (
    "0",
    "-1",
    "9" * 40,
    "a" * 300,
    "not-an-id",
    "%00",
    "%FF%FE",
    "%27%20OR%201%3D1--",
    "%F0%9F%92%A9",
    "0" * 64,
    "g" * 64,
    "..",
    str(uuid.UUID(int=0)),
    "{id}",
)
QUERY_VALUES = (
    "",
    " ",
    "abc",
    "0",
    "-1",
    "1.5",
    "1e3",
    "9" * 30,
    str(2**63),
    "a" * 5000,
    "\x00",
    "%_\\",
    "' OR '1'='1",
    "true",
    "null",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2024-13-45",
    "NaN",
)
BODY_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    1.5,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    10**30,
    -(2**63) - 1,
    float("nan"),
    float("inf"),
    "",
    " ",
    "0",
    "-1",
    "\uff11\uff12\uff13",  # full-width digits: int() would read them as 123
    "1e3",
    "abc",
    "\x00",
    "a\x00b",
    "\ud800",
    "x'; DROP TABLE users;--",
    "💩" * 40,
    "a" * 4096,
    "a" * 30_000,
    [],
    {},
    [1, 2],
    {"$ne": 1},
)
BAD_BODIES = (b"", b"{", b"[]", b"null", b'"text"', b"1", b"\xff\xfe", b"{'a': 1}", b"[" * 60_000)


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    method: str
    path: str  # encoded, with the query string
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    must_fail: bool = True
    statuses: frozenset[int] | None = None  # the answers allowed, when they are fixed


@dataclass(frozen=True, slots=True)
class Target:
    """How to send a request the route would accept, so one bad part at a time reaches the handler."""

    headers: dict[str, str]  # the caller
    path_values: dict[str, str]  # raw values for the path parameters
    body: Callable[[], dict[str, Any]] | None = None  # a fresh valid body per call
    query: dict[str, str] = field(default_factory=dict)


def path_params(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)


def fill(path: str, values: dict[str, str], *, encoded: dict[str, str] | None = None) -> str:
    """``path`` with each ``{name}`` replaced by its value, percent-encoded (``encoded``: as given)."""
    encoded = encoded or {}
    for name in path_params(path):
        value = encoded[name] if name in encoded else quote(values[name], safe="")
        path = path.replace("{" + name + "}", value)
    return path


def with_query(path: str, query: dict[str, str] | list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def refuses(model: type[pydantic.BaseModel] | None, data: Any) -> bool:
    """True when ``model`` (the route's own validator) refuses ``data``."""
    if model is None:
        return False
    try:
        model.model_validate(data)
    except (pydantic.ValidationError, ValueError):
        return True
    return False


def body_bytes(data: Any) -> bytes:
    # allow_nan: NaN and Infinity are sent as Python's json module writes (and reads) them.
    return json.dumps(data, allow_nan=True).encode()


# ---- cases -------------------------------------------------------------------------------------


def cases(
    op: Operation, target: Target, tokens: dict[str, dict[str, str]], max_body_bytes: int
) -> Iterator[Case]:
    """Every bad request for ``op``. ``tokens`` holds the callers' headers by role in the sweep."""
    yield from auth_cases(op, target, tokens)
    yield from path_cases(op, target)
    yield from query_cases(op, target)
    yield from body_cases(op, target, max_body_bytes)


def _request(op: Operation, target: Target, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a Case for the target's request, with ``overrides`` applied."""
    path = with_query(fill(op.path, target.path_values), target.query)
    body = target.body() if target.body is not None else None
    headers = {**target.headers, **({"Content-Type": JSON} if body is not None else {})}
    values: dict[str, Any] = {
        "method": op.method,
        "path": path,
        "headers": headers,
        "body": body_bytes(body) if body is not None else None,
    }
    values.update(overrides)
    return values


def auth_cases(op: Operation, target: Target, tokens: dict[str, dict[str, str]]) -> Iterator[Case]:
    if op.auth is None:
        return
    unauthorized = frozenset({401})
    for name, headers in tokens.items():
        if name.startswith("invalid:"):
            yield Case(
                f"token {name[8:]}",
                **_request(op, target, headers=_merge(target, headers)),
                statuses=unauthorized,
            )
    if op.auth == "admin":
        yield Case(
            "a user's token",
            **_request(op, target, headers=_merge(target, tokens["user"])),
            statuses=frozenset({403}),
        )
    if path_params(op.path):
        # Another user (not an admin) calling with the caller's own ids.
        yield Case("another user's token", **_request(op, target, headers=_merge(target, tokens["other"])))


def _merge(target: Target, auth: dict[str, str]) -> dict[str, str]:
    headers = {k: v for k, v in target.headers.items() if k.lower() != "authorization"}
    return {**headers, **auth}


def path_cases(op: Operation, target: Target) -> Iterator[Case]:
    for name in path_params(op.path):
        for segment in BAD_PATH_SEGMENTS:
            path = with_query(fill(op.path, target.path_values, encoded={name: segment}), target.query)
            yield Case(f"path {name}={segment[:20]}", **_request(op, target, path=path))


def foreign_path_cases(op: Operation, target: Target, foreign: dict[str, str]) -> Iterator[Case]:
    """The caller's request with another user's ids in each path parameter: must be refused."""
    for name in path_params(op.path):
        for what, value in foreign.items():
            path = with_query(fill(op.path, {**target.path_values, name: value}), target.query)
            yield Case(f"path {name}=another user's {what}", **_request(op, target, path=path))


def query_cases(op: Operation, target: Target) -> Iterator[Case]:
    model = op.query_model
    if model is None:
        return
    base_path = fill(op.path, target.path_values)
    names = [f.alias or n for n, f in model.model_fields.items()]
    for name in names:
        for value in QUERY_VALUES:
            query = {**target.query, name: value}
            yield Case(
                f"query {name}={value[:20]!r}",
                **_request(op, target, path=with_query(base_path, query)),
                must_fail=refuses(model, query),
            )
        repeated = [*target.query.items(), (name, "1"), (name, "2")]
        yield Case(
            f"query {name} twice",
            **_request(op, target, path=with_query(base_path, repeated)),
            must_fail=False,
        )
    unknown = {**target.query, "zzUnknown": "1"}
    yield Case(
        "query unknown parameter",
        **_request(op, target, path=with_query(base_path, unknown)),
        must_fail=refuses(model, unknown),
    )


def body_cases(op: Operation, target: Target, max_body_bytes: int) -> Iterator[Case]:
    model = op.request_model
    if model is None or target.body is None:
        return
    for raw in BAD_BODIES:
        yield Case(f"body {raw[:12]!r}", **_request(op, target, body=raw))
    for content_type in NOT_JSON:
        request = _request(op, target)
        request["headers"] = {**request["headers"], "Content-Type": content_type}
        yield Case(f"content type {content_type}", **request)
    request = _request(op, target)
    del request["headers"]["Content-Type"]
    yield Case("no content type", **request)
    padding = {**target.body(), "zzPadding": "a" * max_body_bytes}
    yield Case(
        "body over the size limit",
        **_request(op, target, body=body_bytes(padding)),
        statuses=frozenset({413}),
    )
    yield from _field_cases(op, target, model)


def _field_cases(op: Operation, target: Target, model: type[pydantic.BaseModel]) -> Iterator[Case]:
    for python_name, info in model.model_fields.items():
        name = info.alias or python_name
        for value in BODY_VALUES:
            body = {**target.body(), name: value}
            yield _body_case(op, target, model, f"field {name}={_short(value)}", body)
        body = target.body()
        body.pop(name, None)
        yield _body_case(op, target, model, f"field {name} missing", body)
        if python_name != name:  # the snake_case spelling is an unknown field
            body = {**target.body(), python_name: target.body().get(name, 1)}
            yield _body_case(op, target, model, f"field {python_name} (snake_case)", body)
    yield _body_case(op, target, model, "unknown field", {**target.body(), "zzUnknown": 1})


def _body_case(op: Operation, target: Target, model, label: str, body: dict[str, Any]) -> Case:
    round_trip = json.loads(body_bytes(body))  # what the server will parse
    return Case(label, **_request(op, target, body=body_bytes(body)), must_fail=refuses(model, round_trip))


def _short(value: Any) -> str:
    text_ = repr(value)
    return text_ if len(text_) <= 24 else f"{text_[:20]}...({len(text_)})"


# ---- tokens ------------------------------------------------------------------------------------


def invalid_tokens(
    jwt_key: bytes, user_id: uuid.UUID, inactive_user_id: uuid.UUID
) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be 401 (keys prefixed ``invalid:``)."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "role": "admin",
        "type": "access",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
    }

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    tokens = {
        "missing": {},
        "empty": {"Authorization": ""},
        "bearer only": {"Authorization": "Bearer"},
        "garbage": bearer("garbage"),
        "huge": bearer("A" * 5000),
        "basic": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        "alg none": bearer(jwt.encode(claims, None, algorithm="none")),
        "another key": bearer(jwt.encode(claims, b"k" * 32, algorithm="HS256")),
        "expired": bearer(
            jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, jwt_key, algorithm="HS256")
        ),
        "refresh type": bearer(jwt.encode({**claims, "type": "refresh"}, jwt_key, algorithm="HS256")),
        "unknown user": bearer(jwt.encode({**claims, "sub": str(uuid.uuid4())}, jwt_key, algorithm="HS256")),
        "sub not a uuid": bearer(jwt.encode({**claims, "sub": "1 OR 1=1"}, jwt_key, algorithm="HS256")),
        "inactive user": bearer(
            jwt.encode({**claims, "sub": str(inactive_user_id)}, jwt_key, algorithm="HS256")
        ),
    }
    return {f"invalid:{name}": headers for name, headers in tokens.items()}


# ---- nothing changed ---------------------------------------------------------------------------


# Filled with table names from our own metadata, never with input. The row hashes are summed, so the
# digest does not depend on the order Postgres returns rows in.
_DIGEST = (
    "SELECT '{table}' AS name, count(*) AS rows,"
    " coalesce(sum(hashtextextended(t::text, 0)), 0) AS digest FROM {table} t"
)
_LEDGER = (
    "SELECT 'ledger: sum of entries', 0::bigint, coalesce(sum(amount_msat), 0)::numeric FROM ledger_entries",
    "SELECT 'ledger: sum of balances', 0::bigint, coalesce(sum(balance_msat), 0)::numeric FROM accounts",
    "SELECT 'ledger: sum of holds', 0::bigint, coalesce(sum(held_msat), 0)::numeric FROM accounts",
)


async def state_digest(connection: asyncpg.Connection) -> dict[str, tuple[int, int]]:
    """Row count and content hash of every table of the schema, and the ledger totals."""
    tables = [_DIGEST.format(table=table.name) for table in Base.metadata.sorted_tables]
    statement = " UNION ALL ".join([*tables, *_LEDGER])
    return {row["name"]: (row["rows"], row["digest"]) for row in await connection.fetch(statement)}


def synthesize(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """A body for ``model`` from its JSON schema: each required field at its smallest valid-looking value.

    Only a fallback for routes whose test has not declared a real one; the sweep still mutates it."""
    schema = model.model_json_schema(by_alias=True)
    body: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        prop = next((p for p in prop.get("anyOf", []) if p.get("type") != "null"), prop)
        if "examples" in prop:
            body[name] = prop["examples"][0]
        elif "enum" in prop:
            body[name] = prop["enum"][0]
        elif "const" in prop:
            body[name] = prop["const"]
        elif prop.get("type") == "integer":
            body[name] = max(1, prop.get("minimum", 1))
        elif prop.get("type") == "boolean":
            body[name] = False
        else:
            body[name] = "x" * max(8, prop.get("minLength", 1))
    return body
