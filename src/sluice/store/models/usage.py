"""Usage records (one per request) and their daily roll-up for fast analytics."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sluice.store.models.base import Base
from sluice.store.types import UTCDateTime

# The roll-up's latency histogram: one counter column per bucket of sluice.accounting.latency.BOUNDS_MS.
LATENCY_COLUMNS: tuple[str, ...] = tuple(f"latency_h{i:02d}" for i in range(32))


class UsageRecord(Base):
    """What one request did and cost. ``id`` is Sluice's own id, unique per call, so replays never duplicate."""

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the request arrived
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    principal_kind: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32))
    workspace_id: Mapped[str | None] = mapped_column(String(32))
    surface: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(256))
    deployment: Mapped[str | None] = mapped_column(String(512))
    provider: Mapped[str | None] = mapped_column(String(128))
    upstream_model: Mapped[str | None] = mapped_column(String(256))
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    queue_wait_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    overhead_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_usage_records_created_at", "created_at"),
        Index("ix_usage_records_workspace_created", "workspace_id", "created_at"),
        Index("ix_usage_records_key_created", "key_id", "created_at"),
        Index("ix_usage_records_user_created", "user_id", "created_at"),
        Index("ix_usage_records_model_created", "model", "created_at"),
    )


class UsageDaily(Base):
    """Totals per UTC day, workspace, key, user and model, kept in step with usage_records as they are shipped.

    Null ids are stored as "" so the unique constraint (and the upsert that relies on it) works everywhere.
    """

    __tablename__ = "usage_daily"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    workspace_id: Mapped[str] = mapped_column(String(32), default="")
    key_id: Mapped[str] = mapped_column(String(32), default="")
    user_id: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(256), default="")
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    # Successful requests per latency bucket. Counters in columns (not a JSON blob) so the roll-up's additive
    # upsert keeps them exact when several replicas ship at once; the class namespace is filled from the list
    # of names because 32 hand-written lines would only hide which bucket is which.
    locals().update({name: mapped_column(Integer, default=0, nullable=False) for name in LATENCY_COLUMNS})

    __table_args__ = (
        UniqueConstraint("day", "workspace_id", "key_id", "user_id", "model", name="uq_usage_daily_dims"),
        Index("ix_usage_daily_day", "day"),
    )
