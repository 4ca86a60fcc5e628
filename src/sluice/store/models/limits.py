"""Stored limit policies (set through the admin API and CLI) and editable model prices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sluice.store.models.base import Base
from sluice.store.types import UTCDateTime, utcnow


class LimitPolicy(Base):
    """Limits for one scope (a key, a user or a workspace); these win over the configuration file."""

    __tablename__ = "limit_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope_type: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(64))
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    concurrent: Mapped[int | None] = mapped_column(Integer)
    budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    period: Mapped[str] = mapped_column(String(8), default="month")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("scope_type", "scope_id", name="uq_limit_policies_scope"),)


class ModelPriceRow(Base):
    """A price override per public model (per million tokens); wins over configured and default prices."""

    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    input: Mapped[float] = mapped_column(Float)
    output: Mapped[float] = mapped_column(Float)
    cached_input: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
