"""Auth request and response models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from api_service.schemas.users import Password, Username, UserOut
from api_service.validation import ApiModel, OutModel

# Login accepts any name and password shape (within bounds): a user whose name predates a rule
# change can still log in, and the answer for a malformed name is the same 401 as for an unknown one.
LoginName = Annotated[str, Field(min_length=1, max_length=64)]
LoginPassword = Annotated[str, Field(min_length=1, max_length=1024)]
TokenString = Annotated[str, Field(min_length=1, max_length=512)]


class RegisterRequest(ApiModel):
    username: Username
    password: Password
    admin_key: str | None = Field(
        None, max_length=1024, description="grants the admin role when it equals the server's ADMIN_KEY"
    )


class LoginRequest(ApiModel):
    username: LoginName
    password: LoginPassword


class RefreshRequest(ApiModel):
    refresh_token: TokenString


class LogoutRequest(ApiModel):
    refresh_token: TokenString


class AuthOut(OutModel):
    user: UserOut
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="seconds until the access token expires")
