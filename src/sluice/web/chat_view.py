"""One conversation on the chat page: its messages, the streamed answer, Stop, Regenerate, Edit, and the place in
line while waiting.

A new chat exists only on the page until its first message: then it is stored (with the settings chosen so far),
named by that message, and the address bar and the history drawer show it. Each request carries a request id the
page chose, so the answer's tokens and cost can be read from the gateway's request log once its usage record is
shipped (about a second after the answer ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import background_tasks, ui

from sluice.web.answers import AnswerView, recorded_usage, usage_line
from sluice.web.client import ApiError, GatewayClient
from sluice.web.conversations import ChatSettings, ConversationStore, Message

COST_TRIES = 20  # looks for the answer's usage record, COST_PAUSE apart: the shipper writes every second
COST_PAUSE = 0.5
QUEUE_POLL_SECONDS = 1.0


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_text(entries: list[dict[str, Any]]) -> str:
    """'3rd in line, about 12 s' for the first waiting request, or '' when nothing waits."""
    if not entries:
        return ""
    first = entries[0]
    seconds = max(1, round(float(first.get("estimated_wait_ms") or 0) / 1000))
    return f"{ordinal(int(first['position']))} in line, about {seconds} s"


class Bubble:
    """One message on the page: the user's as plain text, an answer as rendered Markdown with its usage line
    (model, tokens, cost: visible text, so keyboards and screen readers reach it as well as a mouse)."""

    def __init__(self, message: Message, currency: str) -> None:
        self.currency = currency
        self.usage_label: ui.label | None = None
        if message.role == "user":
            with ui.card().classes("max-w-3xl self-end bg-blue-100 dark:bg-blue-900").props("data-role=user"):
                self.text = ui.label(message.content).classes("chat-user answer").mark("message-user")
            return
        with ui.card().classes("max-w-3xl self-start w-full sm:w-auto").props("data-role=assistant"):
            self.body = AnswerView(ui.column().classes("answer gap-1 w-full").mark("message-assistant"))
            self.body.update(message.content)
            with ui.row().classes("gap-1 items-center"):
                ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(message.content)).props(
                    "flat dense size=sm aria-label='Copy answer'"
                )
                self.usage_label = ui.label(usage_line(message.usage, currency)).classes("usage-line").mark("usage")

    def show(self, content: str) -> None:
        self.body.update(content)

    def show_usage(self, usage: dict[str, Any] | None) -> None:
        if self.usage_label is not None:
            self.usage_label.set_text(usage_line(usage, self.currency))


class ChatView:
    def __init__(
        self,
        client: GatewayClient,
        store: ConversationStore,
        settings: ChatSettings,
        conversation_id: str | None,
        request_id_header: str,
        currency: str,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.conversation_id = conversation_id  # None: a new chat, not stored until its first message
        self.request_id_header = request_id_header
        self.currency = currency
        self.history: list[Message] = []
        self.task: asyncio.Task[None] | None = None
        self.on_stored: Callable[[], Awaitable[None]] | None = None  # the drawer lists the chat once it is stored
        self.column: ui.column | None = None
        self.status: ui.label | None = None
        self.prompt: ui.textarea | None = None
        self.send_button: ui.button | None = None
        self.stop_button: ui.button | None = None
        self.regenerate_button: ui.button | None = None
        self.edit_button: ui.button | None = None

    # --- the page ---------------------------------------------------------------------------------------------

    def bubble(self, message: Message) -> Bubble:
        assert self.column is not None
        with self.column:
            return Bubble(message, self.currency)

    def render(self) -> None:
        assert self.column is not None
        self.column.clear()
        for message in self.history:
            self.bubble(message)
        self.sync_actions()

    def sync_actions(self) -> None:
        """Each button says whether it can act now: disabled, not silently inert."""
        busy = self.task is not None
        if self.stop_button is not None:
            self.stop_button.set_visibility(busy)
        if self.send_button is not None:
            self.send_button.set_enabled(not busy)
        if self.regenerate_button is not None:
            self.regenerate_button.set_enabled(not busy and bool(self.history) and self.history[-1].role == "assistant")
        if self.edit_button is not None:
            self.edit_button.set_enabled(not busy and any(m.role == "user" for m in self.history))

    async def change_settings(self, **fields: Any) -> None:
        """Keep a setting with the conversation (a new chat holds it until its first message)."""
        for name, value in fields.items():
            setattr(self.settings, name, value)
        if self.conversation_id is not None:
            await self.store.update(self.conversation_id, **fields)

    # --- asking -----------------------------------------------------------------------------------------------

    async def send(self) -> None:
        assert self.prompt is not None
        content = (self.prompt.value or "").strip()
        if not content or self.task is not None:
            return
        if not self.settings.model:
            ui.notify("Pick a model first.", type="warning")
            return
        self.prompt.set_value("")
        message = Message("user", content)
        self.history.append(message)
        stored_now = self.conversation_id is None
        if stored_now:
            created = await self.store.create(self.settings)
            self.conversation_id = created.id
            ui.navigate.history.replace(f"chat?c={created.id}")  # relative: under the UI's mount path
        assert self.conversation_id is not None
        await self.store.append(self.conversation_id, message)
        if self.on_stored is not None:
            await self.on_stored()  # the drawer shows the chat (a new one under its first question)
        self.bubble(message)
        self.start()

    def start(self) -> None:
        self.task = background_tasks.create(self.answer(), name="sluice-ui-answer")
        self.sync_actions()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def answer(self) -> None:
        """Stream an answer to the history as it stands."""
        assert self.status is not None and self.column is not None and self.conversation_id is not None
        model = self.settings.model
        messages = [{"role": m.role, "content": m.content} for m in self.history]
        if self.settings.system_prompt:
            messages.insert(0, {"role": "system", "content": self.settings.system_prompt})
        body = {
            "model": model,
            "messages": messages,
            "stream_options": {"include_usage": True},
            **self.settings.request(),
        }
        request_id = "ui-" + secrets.token_hex(12)
        reply = Message("assistant", "", {"model": model})
        shown = self.bubble(reply)
        self.status.set_text("Waiting for the model…")
        with self.column:  # a background task has no slot of its own
            poller = ui.timer(QUEUE_POLL_SECONDS, self.poll_queue)
        try:
            async for event in self.client.stream_chat(body, {self.request_id_header: request_id}):
                if event.text:
                    if poller.active:
                        poller.deactivate()
                        self.status.set_text("")
                    reply.content += event.text
                    shown.show(reply.content)
                if event.usage is not None:
                    reply.usage = {**event.usage, "model": model, "request_id": request_id}
                    shown.show_usage(reply.usage)
        except asyncio.CancelledError:
            reply.content += "\n\n*(stopped)*"
            shown.show(reply.content)
        except ApiError as exc:
            reply.content = f"**Could not answer:** {exc.message}"
            shown.show(reply.content)
            self.status.set_text(f"Could not answer: {exc.message}")
        finally:
            poller.deactivate()
            if not self.status.text.startswith("Could not answer"):
                self.status.set_text("")
            self.history.append(reply)
            position = await self.store.append(self.conversation_id, reply)
            self.task = None
            self.sync_actions()
            if position is not None:
                background_tasks.create(self.fill_cost(reply, position, request_id, shown), name="sluice-ui-cost")

    async def fill_cost(self, reply: Message, position: int, request_id: str, shown: Bubble) -> None:
        """Show (and keep) the answer's tokens and cost from the gateway's usage record once it is written.

        A stopped or failed answer has a record too (what was generated is billed). If the record has not arrived
        after the last try (the database is down; the record waits in the spool), the tokens streamed stay shown.
        """
        conversation_id = self.conversation_id
        for _ in range(COST_TRIES):
            recorded = await self.recorded(request_id)
            if recorded is not None:
                reply.usage = {**recorded, "model": (reply.usage or {}).get("model")}
                shown.show_usage(reply.usage)
                if conversation_id is not None:
                    await self.store.set_usage(conversation_id, position, reply.usage)
                return
            await asyncio.sleep(COST_PAUSE)

    async def recorded(self, request_id: str) -> dict[str, Any] | None:
        """The usage the gateway recorded for this user's request, once shipped (None until then)."""
        params = {"request_id": request_id, "user_id": self.store.user_id, "limit": "1"}
        try:
            found = await self.client.admin("GET", "/requests", params=params)
        except ApiError:
            return None
        entries = found.get("data") or []
        return recorded_usage(entries[0]) if entries else None

    async def poll_queue(self) -> None:
        """The place in line and the estimated wait, updated while the request waits."""
        assert self.status is not None
        with contextlib.suppress(ApiError):
            waiting = await self.client.json("GET", "/v1/queue")
            text = queue_text(waiting.get("data") or [])
            if text:
                self.status.set_text(text)

    # --- changing the past ------------------------------------------------------------------------------------

    async def regenerate(self) -> None:
        if self.task is not None or not self.history or self.history[-1].role != "assistant":
            return
        self.history.pop()
        if self.conversation_id is not None:
            await self.store.truncate(self.conversation_id, len(self.history))
        self.render()
        self.start()

    async def edit_last(self) -> None:
        """Put the last question back in the box, dropping it and its answer, to edit and resend."""
        assert self.prompt is not None
        if self.task is not None:
            return
        last_user = max((i for i, m in enumerate(self.history) if m.role == "user"), default=None)
        if last_user is None:
            return
        self.prompt.set_value(self.history[last_user].content)
        self.history = self.history[:last_user]
        if self.conversation_id is not None:
            await self.store.truncate(self.conversation_id, last_user)
        self.render()
