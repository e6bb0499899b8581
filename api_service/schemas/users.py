"""User models: the username and password rules, the user as the API shows it, updates, listing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import pydantic
from pydantic import AfterValidator, Field, StringConstraints
from pydantic.alias_generators import to_camel

from api_service.validation import ApiModel, OutModel, PageQuery, no_nul

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 72  # bcrypt reads at most 72 bytes; bcrypt 5 raises beyond that


def check_password(value: str) -> str:
    """The password rule shared by the API and the CLI: 8+ characters, at most 72 bytes of UTF-8."""
    if len(value) < PASSWORD_MIN_CHARS:
        raise ValueError(f"must be at least {PASSWORD_MIN_CHARS} characters")
    if len(value.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise ValueError(f"must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8 (bcrypt ignores the rest)")
    return value


Username = Annotated[
    str,
    StringConstraints(pattern=USERNAME_PATTERN),
    Field(description="3-32 characters of A-Z a-z 0-9 _ . -; unique regardless of case", examples=["alice"]),
]
Password = Annotated[
    str,
    Field(max_length=PASSWORD_MAX_BYTES, description="8+ characters, at most 72 bytes in UTF-8"),
    AfterValidator(check_password),
]
Role = Literal["user", "admin"]


class UserOut(OutModel):
    """A user as the API shows it: never the password hash."""

    id: uuid.UUID
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    lightning_address: str | None = Field(
        None, description="username@host (host of PUBLIC_URL): LNURL-pay address paying this user"
    )


class UserUpdate(ApiModel):
    """A partial update. Admins may change every field; users only their own username and password
    (``currentPassword`` required to change their own password)."""

    username: Username | None = None
    password: Password | None = None
    current_password: str | None = Field(None, min_length=1, max_length=1024)
    role: Role | None = None
    is_active: bool | None = None

    @pydantic.model_validator(mode="after")
    def _check(self) -> UserUpdate:
        for name in ("username", "password", "role", "is_active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{to_camel(name)} may not be null")
        if self.current_password is not None and self.password is None:
            raise ValueError("currentPassword is only used together with password")
        if not self.model_fields_set - {"current_password"}:
            raise ValueError("nothing to update")
        return self


class UserListQuery(PageQuery):
    q: Annotated[str, AfterValidator(no_nul)] | None = Field(
        None, max_length=64, description="case-insensitive substring of the username"
    )
