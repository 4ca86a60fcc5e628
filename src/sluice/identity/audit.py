"""The audit log: one row per change, with before/after images stripped of anything secret.

This module is the log's repository (the only one that writes or reads ``audit_events``): every service adds its
event to the unit of work of the change it describes, and :func:`audit_events` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import AuditEvent

_SECRET_WORDS = ("hash", "secret", "password", "token", "key_value")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change and from which request (for the audit row)."""

    name: str  # e.g. "user:<id>", "key:<prefix>", "master", "cli"
    request_id: str | None = None


CLI_ACTOR = Actor("cli")


def scrub(image: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy without secret-bearing fields."""
    if image is None:
        return None
    clean: dict[str, Any] = {}
    for name, value in image.items():
        if any(word in name for word in _SECRET_WORDS):
            continue
        clean[name] = value.isoformat() if isinstance(value, datetime) else value
    return clean


def audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    workspace_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add the event to the session: it commits with the change it describes, or not at all."""
    session.add(
        AuditEvent(
            actor=actor.name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            workspace_id=workspace_id,
            before=scrub(before),
            after=scrub(after),
            request_id=actor.request_id,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which events to read, newest first: every filter given narrows it (``before_id`` pages: the events older than
    the last one of the previous page)."""

    workspace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    before_id: int | None = None
    limit: int = 100


async def audit_events(session: AsyncSession, q: AuditQuery) -> list[AuditEvent]:
    """The events ``q`` asks for, newest first (the API and the CLI read the log alike)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if q.since is not None:
        query = query.where(AuditEvent.at >= q.since)
    if q.until is not None:
        query = query.where(AuditEvent.at < q.until)
    for column, value in (
        (AuditEvent.workspace_id, q.workspace_id),
        (AuditEvent.action, q.action),
        (AuditEvent.actor, q.actor),
        (AuditEvent.target_type, q.target_type),
        (AuditEvent.target_id, q.target_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if q.before_id is not None:
        query = query.where(AuditEvent.id < q.before_id)
    return list((await session.execute(query.limit(q.limit))).scalars())
