"""Chat history, per user: every query is scoped by the signed-in user's id, so nobody reads another's chats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from sluice.store.db import Database
from sluice.store.models import ChatMessage, Conversation
from sluice.store.types import utcnow

TITLE_LENGTH = 60


@dataclass
class Message:
    role: str
    content: str
    usage: dict[str, Any] | None = None


class ConversationStore:
    def __init__(self, db: Database, user_id: str) -> None:
        self.db = db
        self.user_id = user_id

    async def all(self) -> list[Conversation]:
        query = (
            select(Conversation).where(Conversation.user_id == self.user_id).order_by(Conversation.updated_at.desc())
        )
        async with self.db.session() as session:
            return list((await session.execute(query.limit(200))).scalars())

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self.db.session() as session:
            found = await session.get(Conversation, conversation_id)
        return found if found is not None and found.user_id == self.user_id else None

    async def create(self, model: str | None) -> Conversation:
        async with self.db.session() as session:
            conversation = Conversation(user_id=self.user_id, model=model)
            session.add(conversation)
        return conversation

    async def update(self, conversation_id: str, **fields: Any) -> None:
        allowed = {k: v for k, v in fields.items() if k in ("title", "model", "system_prompt")}
        async with self.db.session() as session:
            found = await session.get(Conversation, conversation_id)
            if found is None or found.user_id != self.user_id:
                return
            for name, value in allowed.items():
                setattr(found, name, value)
            found.updated_at = utcnow()

    async def delete(self, conversation_id: str) -> None:
        async with self.db.session() as session:
            found = await session.get(Conversation, conversation_id)
            if found is not None and found.user_id == self.user_id:
                await session.delete(found)

    async def messages(self, conversation_id: str) -> list[Message]:
        if await self.get(conversation_id) is None:
            return []
        query = select(ChatMessage).where(ChatMessage.conversation_id == conversation_id).order_by(ChatMessage.position)
        async with self.db.session() as session:
            rows = (await session.execute(query)).scalars()
            return [Message(r.role, r.content, r.usage) for r in rows]

    async def append(self, conversation_id: str, message: Message) -> None:
        async with self.db.session() as session:
            found = await session.get(Conversation, conversation_id)
            if found is None or found.user_id != self.user_id:
                return
            last = await session.execute(
                select(func.max(ChatMessage.position)).where(ChatMessage.conversation_id == conversation_id)
            )
            position = (last.scalar() or 0) + 1
            session.add(
                ChatMessage(
                    conversation_id=conversation_id,
                    position=position,
                    role=message.role,
                    content=message.content,
                    usage=message.usage,
                )
            )
            if message.role == "user" and found.title == "New chat":
                found.title = message.content.strip().splitlines()[0][:TITLE_LENGTH] or "New chat"
            found.updated_at = utcnow()

    async def truncate(self, conversation_id: str, keep: int) -> None:
        """Keep the first ``keep`` messages (for regenerate and edit-and-resend)."""
        if await self.get(conversation_id) is None:
            return
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(ChatMessage.position)
                    .where(ChatMessage.conversation_id == conversation_id)
                    .order_by(ChatMessage.position)
                )
            ).scalars()
            positions = list(rows)
            doomed = positions[keep:]
            if doomed:
                await session.execute(
                    delete(ChatMessage).where(
                        ChatMessage.conversation_id == conversation_id, ChatMessage.position.in_(doomed)
                    )
                )
