"""A tiny OpenAPI 3.1 registry: handler modules describe their operations with the same pydantic
models they validate with, and ``GET /api/v1/openapi.json`` renders them.

Usage, in a handler module's ``setup(app)``::

    from api_service import openapi

    app.router.add_post("/api/v1/invoices", create_invoice)
    openapi.register("POST", "/api/v1/invoices", "Create an incoming invoice",
                     request_model=CreateInvoice, response_model=InvoiceOut, status=201,
                     errors=(422, 429), tags=("wallet",))

- ``auth``: ``"user"`` (bearer token), ``"admin"`` or ``None`` (public); adds 401/403 responses.
- ``status``: the success status; 204 renders no body. ``paginated=True`` adds ``pagination``.
- ``query_model``: its fields become query parameters; ``{name}`` segments become path parameters.
- Every response is documented inside the envelope of DESIGN §3 (``success``/``data``/``meta``, or
  ``error`` with ``code``/``message``/``details``), except with ``protocol="lndhub"`` or ``"lnurl"``:
  those operations answer the bare ``response_model`` (a JSON array of it with ``array=True``), take
  their body as JSON or a form (LndHub), and their errors in the protocol's own shape (``LndHubError``
  ``{error, code, message}``; ``LnurlError`` ``{status: "ERROR", reason}``).
- ``error_model``: the shape of the route's error bodies; by default the envelope's ``ErrorEnvelope``,
  or the protocol's error model (``api_service/schemas/envelope.py``). The document shows it and the
  bad-input sweep checks every 4xx of the route against it.

Registering the same method and path again replaces the entry, so calling it from ``setup`` for
every app a process builds (tests build many) is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic.json_schema import models_json_schema

from api_service.schemas.envelope import ErrorEnvelope, LndHubError, LnurlError, Meta, Pagination

Auth = Literal["user", "admin"] | None
Protocol = Literal["lndhub", "lnurl"] | None
REF = "#/components/schemas/{model}"
_PROTOCOL_ERRORS: dict[str | None, type[pydantic.BaseModel]] = {
    None: ErrorEnvelope,
    "lndhub": LndHubError,
    "lnurl": LnurlError,
}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_ERROR_TEXT = {
    400: "Validation error (VALIDATION_ERROR, WEBHOOK_URL_NOT_ALLOWED), malformed JSON",
    401: "Not authenticated (UNAUTHORIZED, INVALID_CREDENTIALS, TOKEN_EXPIRED)",
    403: "Not allowed (FORBIDDEN)",
    404: "Not found (NOT_FOUND)",
    409: "Conflict (CONFLICT, USERNAME_TAKEN, ALREADY_PAID, ...)",
    413: "Body too large (PAYLOAD_TOO_LARGE)",
    415: "Not JSON (UNSUPPORTED_MEDIA_TYPE)",
    422: "Cannot be carried out (INSUFFICIENT_BALANCE, INVOICE_EXPIRED, ...)",
    429: "Rate limited (RATE_LIMITED); see the Retry-After header",
    503: "Unavailable (UNAVAILABLE)",
}
_PROTOCOL_ERROR_TEXT = {
    "lndhub": {
        400: "Bad arguments (code 8), not a valid invoice (4), payment failed (10)",
        401: "Bad auth (code 1)",
        403: "Not allowed here (code 6 or 1)",
        404: "Not found (code 8)",
        409: "Payment in transit (code 9) or already paid (10)",
        413: "Body too large (code 8)",
        422: "Not enough balance (code 2) or an invoice that cannot be paid (4)",
        429: "Rate limited (code 6); see the Retry-After header",
        502: "Node failure (code 7)",
        503: "Node failure (code 7) or unavailable (6)",
    },
    "lnurl": {
        400: "A bad amount or comment (status ERROR)",
        404: "No such user (status ERROR)",
        429: "Rate limited (status ERROR); see the Retry-After header",
        503: "The node did not make the invoice in time (status ERROR)",
    },
}


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    request_model: type[pydantic.BaseModel] | None = None
    response_model: type[pydantic.BaseModel] | None = None
    query_model: type[pydantic.BaseModel] | None = None
    auth: Auth = "user"
    status: int = 200
    paginated: bool = False
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    protocol: Protocol = None
    array: bool = False
    error_model: type[pydantic.BaseModel] = ErrorEnvelope


_operations: dict[tuple[str, str], Operation] = {}


def register(
    method: str,
    path: str,
    summary: str,
    request_model: type[pydantic.BaseModel] | None = None,
    response_model: type[pydantic.BaseModel] | None = None,
    auth: Auth = "user",
    status: int = 200,
    query_model: type[pydantic.BaseModel] | None = None,
    *,
    paginated: bool = False,
    errors: Iterable[int] = (),
    tags: Iterable[str] = (),
    description: str = "",
    protocol: Protocol = None,
    array: bool = False,
    error_model: type[pydantic.BaseModel] | None = None,
) -> None:
    """Describe one operation (see the module docstring)."""
    if auth not in ("user", "admin", None):
        raise ValueError(f"auth must be 'user', 'admin' or None, not {auth!r}")
    if protocol not in _PROTOCOL_ERRORS:
        raise ValueError(f"protocol must be 'lndhub', 'lnurl' or None, not {protocol!r}")
    operation = Operation(
        method=method.upper(),
        path=path,
        summary=summary,
        request_model=request_model,
        response_model=response_model,
        query_model=query_model,
        auth=auth,
        status=status,
        paginated=paginated,
        errors=tuple(errors),
        tags=tuple(tags),
        description=description,
        protocol=protocol,
        array=array,
        error_model=error_model or _PROTOCOL_ERRORS[protocol],
    )
    _operations[(operation.method, path)] = operation


def operations() -> list[Operation]:
    return sorted(_operations.values(), key=lambda op: (op.path, op.method))


def build_document(*, title: str = "lightning-wallet API", version: str = "1.0.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    ops = operations()
    schema_of, definitions = _schemas(ops)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schema_of)
    components = definitions
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Custodial Lightning wallet. Every JSON response under /api/v1 uses the "
            "envelope {success, data | error, meta}; amounts are integers in sats. The LndHub (/lndhub) "
            "and LNURL-pay (/.well-known/lnurlp, /lnurlp) routes speak their own protocols.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _schemas(ops: list[Operation]) -> tuple[dict[tuple[type, str], dict[str, Any]], dict[str, Any]]:
    wanted: set[tuple[type[pydantic.BaseModel], str]] = {
        (Meta, "serialization"),
        (Pagination, "serialization"),
    }
    for op in ops:
        wanted.add((op.error_model, "serialization"))
        if op.request_model is not None:
            wanted.add((op.request_model, "validation"))
        if op.response_model is not None:
            wanted.add((op.response_model, "serialization"))
    ordered = sorted(wanted, key=lambda item: (item[0].__module__, item[0].__qualname__, item[1]))
    schema_of, top = models_json_schema(ordered, by_alias=True, ref_template=REF)  # type: ignore[arg-type]
    return schema_of, top.get("$defs", {})


def _operation(op: Operation, schema_of: dict[tuple[type, str], dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
    if op.description:
        entry["description"] = op.description
    if op.tags:
        entry["tags"] = list(op.tags)
    parameters = _path_parameters(op.path) + _query_parameters(op.query_model)
    if parameters:
        entry["parameters"] = parameters
    if op.request_model is not None:
        schema = schema_of[(op.request_model, "validation")]
        content = {"application/json": {"schema": schema}}
        if op.protocol == "lndhub":
            content.update({media: {"schema": schema} for media in _FORM_TYPES})
        entry["requestBody"] = {"required": op.protocol is None, "content": content}
    if op.auth is not None:
        entry["security"] = [{"bearerAuth": []}]
        entry["x-role"] = op.auth
    entry["responses"] = _responses(op, schema_of)
    return entry


def _responses(op: Operation, schema_of: dict[tuple[type, str], dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.status == 204:
        responses["204"] = {"description": "No content"}
    elif op.protocol is not None:
        data = schema_of[(op.response_model, "serialization")] if op.response_model is not None else {}
        if op.array:
            data = {"type": "array", "items": data}
        responses[str(op.status)] = {
            "description": "Success",
            "content": {"application/json": {"schema": data}},
        }
    else:
        data: dict[str, Any] = {}
        if op.response_model is not None:
            data = schema_of[(op.response_model, "serialization")]
        if op.paginated:
            data = {"type": "array", "items": data}
        properties: dict[str, Any] = {
            "success": {"const": True},
            "data": data,
            "meta": {"$ref": REF.format(model="Meta")},
        }
        required = ["success", "data", "meta"]
        if op.paginated:
            properties["pagination"] = {"$ref": REF.format(model="Pagination")}
            required.append("pagination")
        responses[str(op.status)] = {
            "description": "Success",
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    codes = set(op.errors)
    if op.request_model is not None or op.query_model is not None:
        codes |= {400}
    if op.request_model is not None:
        codes |= {413} if op.protocol == "lndhub" else {413, 415}
    if op.auth is not None:
        codes |= {401}
    if op.auth == "admin":
        codes |= {403}
    texts = _PROTOCOL_ERROR_TEXT.get(op.protocol or "", _ERROR_TEXT)
    for code in sorted(codes):
        content = {"application/json": {"schema": schema_of[(op.error_model, "serialization")]}}
        responses[str(code)] = {"description": texts.get(code, "Error"), "content": content}
    return responses


def _operation_id(op: Operation) -> str:
    words = re.findall(r"[A-Za-z0-9]+", op.path.removeprefix("/api/v1"))
    return op.method.lower() + "".join(word.capitalize() for word in words)


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def _query_parameters(model: type[pydantic.BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]
