"""SQLAlchemy models: the system of record, one module per feature, all on one ``Base.metadata``.

Every change to a model comes with an Alembic migration (``store/migrations/versions``); a test checks that the
models and the migrations agree. Import models from here, so that every table is registered on the metadata.
"""

from sluice.store.models.base import NAMING, Base
from sluice.store.models.chat import ChatMessage, Conversation
from sluice.store.models.identity import (
    DEFAULT_WORKSPACE_ID,
    ApiKey,
    AuditEvent,
    GatewaySetting,
    IpRule,
    Membership,
    PasswordReset,
    RefreshToken,
    RegistrationToken,
    User,
    Workspace,
)
from sluice.store.models.limits import LimitPolicy, ModelPriceRow
from sluice.store.models.responses import StoredResponse
from sluice.store.models.sso import SsoIdentity, SsoLogin
from sluice.store.models.usage import UsageDaily, UsageRecord

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "NAMING",
    "ApiKey",
    "AuditEvent",
    "Base",
    "ChatMessage",
    "Conversation",
    "GatewaySetting",
    "IpRule",
    "LimitPolicy",
    "Membership",
    "ModelPriceRow",
    "PasswordReset",
    "RefreshToken",
    "RegistrationToken",
    "SsoIdentity",
    "SsoLogin",
    "StoredResponse",
    "UsageDaily",
    "UsageRecord",
    "User",
    "Workspace",
]
