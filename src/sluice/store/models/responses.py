"""Responses stored for the Responses API (``store: true``): retrieval, deletion, input items, continuation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from sluice.store.models.base import Base
from sluice.store.types import UTCDateTime, utcnow


class StoredResponse(Base):
    __tablename__ = "stored_responses"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # resp_..., or the upstream's id (pass-through)
    workspace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    owner: Mapped[str] = mapped_column(String(80))  # "user:<id>", "key:<id>", "master:master", "network:<id>"
    previous_response_id: Mapped[str | None] = mapped_column(String(128), default=None)
    model: Mapped[str] = mapped_column(String(256))
    input_items: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_stored_responses_owner", "workspace_id", "owner"),
        Index("ix_stored_responses_expires_at", "expires_at"),
    )
