"""Who may see a stored response, how long it is kept, and a conversation rebuilt from a chain of them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from sluice.config import ResponsesConfig
from sluice.errors import NotFound, Overloaded
from sluice.identity.principal import Principal
from sluice.store.db import Database
from sluice.store.models import StoredResponse
from sluice.stored_responses.repository import ResponseRepository

log = structlog.get_logger("sluice.responses")

PURGE_EVERY_SECONDS = 60.0


def owner_of(principal: Principal) -> str:
    """The scope that sees a stored response: the signed-in user (any of their keys), else the key or caller."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"{principal.kind}:{principal.id}"


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    previous_response_id: str | None
    input_items: list[dict[str, Any]]
    response: dict[str, Any]


class ResponseStore:
    def __init__(self, db: Database, config: ResponsesConfig) -> None:
        self.repository = ResponseRepository(db)
        self.retention = timedelta(days=config.retention_days)
        self.max_chain = config.max_chain
        self._purged = 0.0

    async def save(
        self,
        principal: Principal,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        previous_response_id: str | None,
    ) -> None:
        now = datetime.now(UTC)
        row = StoredResponse(
            id=str(response["id"]),
            workspace_id=principal.workspace_id,
            owner=owner_of(principal),
            previous_response_id=previous_response_id,
            model=str(response.get("model") or ""),
            input_items=input_items,
            response=response,
            created_at=now,
            expires_at=now + self.retention,
        )
        try:
            await self.repository.insert(row)
            if time.monotonic() - self._purged > PURGE_EVERY_SECONDS:
                self._purged = time.monotonic()
                await self.repository.purge_expired(now)
        except (SQLAlchemyError, OSError) as exc:
            raise Overloaded(
                "The gateway could not store this response; try again shortly, or send store: false.",
                code="store_unavailable",
            ) from exc

    async def get(self, principal: Principal, response_id: str) -> Stored:
        try:
            row = await self.repository.get(response_id, principal.workspace_id, owner_of(principal), datetime.now(UTC))
        except (SQLAlchemyError, OSError) as exc:
            raise Overloaded("Stored responses cannot be read right now.", code="store_unavailable") from exc
        if row is None:
            raise NotFound(f"No response found with id '{response_id}'.", param="response_id", code="not_found")
        return Stored(row.id, row.previous_response_id, list(row.input_items), dict(row.response))

    async def delete(self, principal: Principal, response_id: str) -> None:
        try:
            deleted = await self.repository.delete(response_id, principal.workspace_id, owner_of(principal))
        except (SQLAlchemyError, OSError) as exc:
            raise Overloaded("Stored responses cannot be changed right now.", code="store_unavailable") from exc
        if not deleted:
            raise NotFound(f"No response found with id '{response_id}'.", param="response_id", code="not_found")

    async def conversation(self, principal: Principal, response_id: str) -> list[dict[str, Any]]:
        """Every item of the chain ending at ``response_id``, oldest first: each turn's input, then its output."""
        turns: list[Stored] = []
        next_id: str | None = response_id
        while next_id is not None and len(turns) < self.max_chain:
            try:
                stored = await self.get(principal, next_id)
            except NotFound:
                if not turns:
                    raise NotFound(
                        f"Previous response with id '{response_id}' not found.", param="previous_response_id"
                    ) from None
                break  # an older turn expired or was deleted: the conversation starts after it
            turns.append(stored)
            next_id = stored.previous_response_id
        items: list[dict[str, Any]] = []
        for stored in reversed(turns):
            items += stored.input_items
            items += [i for i in stored.response.get("output") or () if isinstance(i, dict)]
        return items
