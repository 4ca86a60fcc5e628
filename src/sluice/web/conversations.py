"""Chat history, per user: every query is scoped by the signed-in user's id, so nobody reads another's chats.

These are the UI's own tables; everything else the UI shows (an answer's recorded cost included) comes through the
gateway's API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from sluice.store.db import Database
from sluice.store.models import ChatMessage, Conversation
from sluice.store.types import utcnow

TITLE_LENGTH = 60
NEW_CHAT = "New chat"  # a conversation's title (the column's default) until its first question names it


UPDATABLE = ("title", "model", "system_prompt", "temperature", "max_tokens")


@dataclass
class ChatSettings:
    """What a conversation asks the model with (kept with it; a new chat holds them until its first message)."""

    model: str | None = None
    system_prompt: str = ""
    temperature: float | None = None  # None: the model's default
    max_tokens: int | None = None

    @classmethod
    def of(cls, conversation: Conversation) -> ChatSettings:
        return cls(conversation.model, conversation.system_prompt, conversation.temperature, conversation.max_tokens)

    def request(self) -> dict[str, Any]:
        """The sampling fields of a chat-completion request (those left unset are the model's own)."""
        fields: dict[str, Any] = {}
        if self.temperature is not None:
            fields["temperature"] = self.temperature
        if self.max_tokens is not None:
            fields["max_tokens"] = self.max_tokens
        return fields


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

    async def search(self, needle: str) -> list[Conversation]:
        """The user's conversations whose title or any message contains ``needle`` (case-insensitive), newest first."""
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        in_messages = select(ChatMessage.conversation_id).where(ChatMessage.content.ilike(pattern, escape="\\"))
        query = (
            select(Conversation)
            .where(
                Conversation.user_id == self.user_id,
                Conversation.title.ilike(pattern, escape="\\") | Conversation.id.in_(in_messages),
            )
            .order_by(Conversation.updated_at.desc())
        )
        async with self.db.session() as session:
            return list((await session.execute(query.limit(200))).scalars())

    async def create(self, settings: ChatSettings) -> Conversation:
        async with self.db.session() as session:
            conversation = Conversation(
                user_id=self.user_id,
                model=settings.model,
                system_prompt=settings.system_prompt,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
            )
            session.add(conversation)
        return conversation

    async def update(self, conversation_id: str, **fields: Any) -> None:
        allowed = {k: v for k, v in fields.items() if k in UPDATABLE}
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

    async def append(self, conversation_id: str, message: Message) -> int | None:
        """Add a message at the end; its position, or None when the conversation is not the user's."""
        async with self.db.session() as session:
            found = await session.get(Conversation, conversation_id)
            if found is None or found.user_id != self.user_id:
                return None
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
            if message.role == "user" and found.title == NEW_CHAT:
                found.title = message.content.strip().splitlines()[0][:TITLE_LENGTH] or NEW_CHAT
            found.updated_at = utcnow()
        return position

    async def set_usage(self, conversation_id: str, position: int, usage: dict[str, Any]) -> None:
        """Replace the usage kept with one message (when its cost is known)."""
        if await self.get(conversation_id) is None:
            return
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(ChatMessage).where(
                        ChatMessage.conversation_id == conversation_id, ChatMessage.position == position
                    )
                )
            ).scalar_one_or_none()
            if row is not None:
                row.usage = usage

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
