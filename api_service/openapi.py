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
  ``error`` with ``code``/``message``/``details``).

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

Auth = Literal["user", "admin"] | None
REF = "#/components/schemas/{model}"

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
) -> None:
    """Describe one operation (see the module docstring)."""
    if auth not in ("user", "admin", None):
        raise ValueError(f"auth must be 'user', 'admin' or None, not {auth!r}")
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
    components = {**definitions, **_envelope_schemas()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Custodial Lightning wallet. Every JSON response uses the envelope "
            "{success, data | error, meta}; amounts are integers in sats.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _schemas(ops: list[Operation]) -> tuple[dict[tuple[type, str], dict[str, Any]], dict[str, Any]]:
    wanted: set[tuple[type[pydantic.BaseModel], str]] = set()
    for op in ops:
        if op.request_model is not None:
            wanted.add((op.request_model, "validation"))
        if op.response_model is not None:
            wanted.add((op.response_model, "serialization"))
    if not wanted:
        return {}, {}
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
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[(op.request_model, "validation")]}},
        }
    if op.auth is not None:
        entry["security"] = [{"bearerAuth": []}]
        entry["x-role"] = op.auth
    entry["responses"] = _responses(op, schema_of)
    return entry


def _responses(op: Operation, schema_of: dict[tuple[type, str], dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.status == 204:
        responses["204"] = {"description": "No content"}
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
        codes |= {413, 415}
    if op.auth is not None:
        codes |= {401}
    if op.auth == "admin":
        codes |= {403}
    for code in sorted(codes):
        content = {"application/json": {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}}
        responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"), "content": content}
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


def _envelope_schemas() -> dict[str, Any]:
    meta = {
        "type": "object",
        "required": ["requestId", "timestamp"],
        "properties": {
            "requestId": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }
    pagination = {
        "type": "object",
        "required": ["page", "pageSize", "totalItems", "totalPages"],
        "properties": {
            name: {"type": "integer"} for name in ("page", "pageSize", "totalItems", "totalPages")
        },
    }
    error = {
        "type": "object",
        "required": ["success", "error", "meta"],
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z_]+$"},
                    "message": {"type": "string"},
                    "details": {
                        "description": "field errors (a list) for VALIDATION_ERROR; errorId for a 500"
                    },
                },
            },
            "meta": {"$ref": REF.format(model="Meta")},
        },
    }
    return {"Meta": meta, "Pagination": pagination, "ErrorEnvelope": error}
