"""Request and response bodies of the admin API.

Request models forbid unknown fields, so a field a caller may not set (a role on a self-service route, a
workspace on a key a member creates, spend) is refused with 422 rather than silently ignored; which of the
allowed fields a caller may use is then checked against their role (see :mod:`sluice.admin.policy`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sluice.identity.network import parse_network
from sluice.identity.principal import PRIORITY_ORDER


def _known_priority(name: str) -> str:
    if name not in PRIORITY_ORDER:
        raise ValueError(f"unknown priority class (known: {', '.join(PRIORITY_ORDER)})")
    return name


Priority = Annotated[str, AfterValidator(_known_priority)]
WorkspaceRole = Literal["owner", "member", "viewer"]
KeyRole = Literal["admin", "owner", "member", "viewer"]
Name = Field(min_length=1, max_length=200)
ModelList = list[str] | None


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Body(BaseModel):
    """A request body: unknown fields and NUL characters (which no database column keeps) are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text fields must not contain NUL characters")
        return data


class ErrorDetail(BaseModel):
    type: str
    message: str
    code: str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- auth -----------------------------------------------------------------------------------------------------


class RegisterRequest(Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    invite_token: str | None = Field(None, max_length=200)


class LoginRequest(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    workspace_id: str | None = Field(None, max_length=64)


class RefreshRequest(Body):
    refresh_token: str = Field(max_length=4096)


class PasswordChange(Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class PasswordResetRequest(Body):
    token: str = Field(max_length=200)
    new_password: str = Field(max_length=1024)


class PasswordResetCreated(BaseModel):
    token: str  # shown once: hand it (or the UI link) to the user
    ui_path: str
    expires_at: datetime


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user_id: str
    workspace_id: str | None


class UserOut(BaseModel):
    id: str
    email: str
    status: str
    is_admin: bool
    priority: str | None
    created_at: datetime
    password_login: bool = True  # False: this user signs in through single sign-on only


class Registered(BaseModel):
    user: UserOut
    pending: bool


class Me(BaseModel):
    kind: str
    id: str
    role: str
    workspace_id: str | None
    user_id: str | None
    key_id: str | None
    priority: str
    allowed_models: list[str] | None
    user: UserOut | None = None
    workspaces: list[MembershipOut] = []


# --- users, workspaces, memberships ---------------------------------------------------------------------------


class UserCreate(Body):
    """An account an admin makes; without ``password`` the answer carries a link for the user to set one."""

    email: str = Field(min_length=3, max_length=320)
    password: str | None = Field(None, min_length=1, max_length=1024)
    workspace_id: str = Field("default", max_length=64)
    role: WorkspaceRole = "member"
    priority: Priority | None = None


class UserCreated(BaseModel):
    user: UserOut
    workspace_id: str
    role: str
    password_reset: PasswordResetCreated | None  # shown once: the link the user sets a password with


class UserUpdate(Body):
    is_admin: bool | None = None
    priority: Priority | None = None
    password_login: bool | None = None


class WorkspaceCreate(Body):
    name: str = Name
    priority: Priority | None = None
    allowed_models: ModelList = None


class WorkspaceUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    disabled: bool | None = None
    priority: Priority | None = None
    allowed_models: ModelList = None


class WorkspaceOut(BaseModel):
    id: str
    name: str
    disabled: bool
    priority: str | None
    allowed_models: list[str] | None
    created_at: datetime


class MembershipPut(Body):
    role: WorkspaceRole


class MembershipOut(BaseModel):
    user_id: str
    workspace_id: str
    role: str
    email: str | None = None


# --- keys -----------------------------------------------------------------------------------------------------


class KeyCreate(Body):
    name: str = Name
    allowed_models: ModelList = None
    priority: Priority | None = None
    expires_at: datetime | None = None
    role: KeyRole | None = None  # default: the creator's role (capped at owner for non-admins)
    user_id: str | None = Field(None, max_length=64)  # owners and admins create keys for others
    workspace_id: str | None = Field(None, max_length=64)  # admins only
    ip_allow: list[str] | None = Field(None, max_length=100)  # CIDRs this key may be used from
    cache: bool | None = None  # cache this key's answers (true), never (false), or as the model says (null)


class KeyUpdate(Body):
    """Changes to an existing key; fields left out stay as they are (``null`` clears models or expiry)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    allowed_models: ModelList = None
    priority: Priority | None = None
    expires_at: datetime | None = None
    cache: bool | None = None  # null: back to the model's and the gateway's setting


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    workspace_id: str
    user_id: str | None
    role: str
    allowed_models: list[str] | None
    priority: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    cache: bool | None


class KeyCreated(KeyOut):
    key: str  # the secret: shown here once, never again


# --- invites, IP rules, settings, audit -------------------------------------------------------------------------


class InviteCreate(Body):
    workspace_id: str | None = Field(None, max_length=64)
    role: WorkspaceRole = "member"
    expires_in_hours: float | None = Field(None, gt=0, le=24 * 365)
    note: str = Field("", max_length=200)


class InviteOut(BaseModel):
    id: str
    workspace_id: str | None
    role: str
    note: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    revoked_at: datetime | None


class InviteCreated(InviteOut):
    token: str  # shown once


class IpRuleCreate(Body):
    cidr: str = Field(min_length=1, max_length=64)
    scope: Literal["global", "workspace", "key"] = "global"
    workspace_id: str | None = Field(None, max_length=64)
    key_id: str | None = Field(None, max_length=64)
    anonymous: bool = False
    priority: Priority | None = None
    allowed_models: ModelList = None
    note: str = Field("", max_length=200)


class IpRuleOut(BaseModel):
    id: str
    cidr: str
    scope: str
    workspace_id: str | None
    key_id: str | None
    anonymous: bool
    priority: str | None
    allowed_models: list[str] | None
    note: str
    created_by: str | None
    created_at: datetime


def _network(cidr: str) -> str:
    return str(parse_network(cidr))  # its ValueError names the entry; the 422's loc gives its position


Network = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_network)]


class SettingsOut(BaseModel):
    registration: Literal["closed", "invite", "approval"]
    trusted_proxies: list[str]  # in force: the stored list, else the configuration's
    trusted_proxies_stored: bool  # False: the configuration file's value applies


class SettingsUpdate(Body):
    """Fields left out stay as they are; ``trusted_proxies: null`` goes back to the configuration's list."""

    registration: Literal["closed", "invite", "approval"] | None = None
    trusted_proxies: list[Network] | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _something_to_change(self) -> SettingsUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one setting to change (registration, trusted_proxies)")
        if "registration" in self.model_fields_set and self.registration is None:
            raise ValueError("registration cannot be null")
        return self


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    workspace_id: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    request_id: str | None


Me.model_rebuild()


class SsoProviderOut(BaseModel):
    name: str
    label: str = Field(description="The button's text: 'Sign in with <label>'.")
    start_url: str = Field(description="Where a browser goes to sign in (relative to the gateway).")


class SsoProviders(BaseModel):
    providers: list[SsoProviderOut]
    password_login: bool = Field(description="False: password sign-in is turned off for everyone.")


class SsoTicket(Body):
    ticket: str = Field(max_length=256)


class SsoLogout(BaseModel):
    end_session_url: str | None = Field(
        description="The identity provider's logout page to send the browser to, when it has one."
    )
