"""The chat page: models the user may use, streamed answers, Stop, regenerate, edit and resend, a system prompt
per conversation, conversations kept per user, the place in line while waiting, usage and cost per answer on hover.

Each request carries a request id the page chose, so the answer's cost can be read from the gateway's own usage
record of that request once it has been shipped to the database (about a second after the answer ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from nicegui import background_tasks, ui

from sluice.web.answers import AnswerView, usage_text
from sluice.web.client import ApiError, GatewayClient
from sluice.web.conversations import NEW_CHAT, ConversationStore, Message
from sluice.web.layout import attempt, confirm, frame, transient_dialog
from sluice.web.session import context, me, require


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


COST_TRIES = 20  # looks for the answer's usage record, COST_PAUSE apart: the shipper writes every second
COST_PAUSE = 0.5
NO_USAGE = "no usage reported"


class Bubble:
    """One message on the page: its body, and for answers the usage tooltip (updated when usage arrives)."""

    def __init__(self, message: Message) -> None:
        align = "self-end bg-blue-100 dark:bg-blue-900" if message.role == "user" else "self-start"
        with ui.card().classes(f"max-w-3xl {align}").props(f"data-role={message.role}"):
            self.body = AnswerView(ui.column().classes("answer gap-1 w-full").mark(f"message-{message.role}"))
            self.body.update(message.content)
            self.tooltip: ui.tooltip | None = None
            if message.role == "assistant":
                with ui.row().classes("gap-1 items-center"):
                    ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(message.content)).props(
                        "flat dense size=sm aria-label='Copy answer'"
                    )
                    with ui.icon("info_outline").classes("text-gray-500").mark("usage"):
                        self.tooltip = ui.tooltip(usage_text(message.usage) or NO_USAGE)

    def show(self, content: str) -> None:
        self.body.update(content)

    def show_usage(self, usage: dict[str, Any] | None) -> None:
        if self.tooltip is not None:
            self.tooltip.set_text(usage_text(usage) or NO_USAGE)


class ChatView:
    def __init__(self, client: GatewayClient, store: ConversationStore, conversation_id: str, header: str) -> None:
        self.client = client
        self.store = store
        self.conversation_id = conversation_id
        self.request_id_header = header
        self.history: list[Message] = []
        self.task: asyncio.Task[None] | None = None
        self.model: ui.select | None = None
        self.system: ui.textarea | None = None
        self.column: ui.column | None = None
        self.status: ui.label | None = None
        self.stop_button: ui.button | None = None
        self.prompt: ui.textarea | None = None
        self.title: ui.link | None = None  # this conversation's entry in the side drawer

    def bubble(self, message: Message) -> Bubble:
        assert self.column is not None
        with self.column:
            return Bubble(message)

    def render(self) -> None:
        assert self.column is not None
        self.column.clear()
        for message in self.history:
            self.bubble(message)

    def streaming(self, on: bool) -> None:
        if self.stop_button is not None:
            self.stop_button.set_visibility(on)

    async def answer(self) -> None:
        """Stream an answer to the history as it stands."""
        assert self.model is not None and self.status is not None and self.system is not None
        messages = [{"role": m.role, "content": m.content} for m in self.history]
        if self.system.value:
            messages.insert(0, {"role": "system", "content": self.system.value})
        body = {"model": self.model.value, "messages": messages, "stream_options": {"include_usage": True}}
        request_id = "ui-" + secrets.token_hex(12)
        reply = Message("assistant", "")
        shown = self.bubble(reply)
        self.status.set_text("Waiting for the model…")
        assert self.column is not None
        with self.column:  # a background task has no slot of its own
            poller = ui.timer(1.0, self.poll_queue)
        self.streaming(True)
        try:
            async for event in self.client.stream_chat(body, {self.request_id_header: request_id}):
                if event.text:
                    if poller.active:
                        poller.deactivate()
                        self.status.set_text("")
                    reply.content += event.text
                    shown.show(reply.content)
                if event.usage is not None:
                    reply.usage = {**event.usage, "request_id": request_id}
                    shown.show_usage(reply.usage)
        except asyncio.CancelledError:
            reply.content += "\n\n*(stopped)*"
            shown.show(reply.content)
        except ApiError as exc:
            reply.content = f"**Could not answer:** {exc.message}"
            shown.show(reply.content)
        finally:
            poller.deactivate()
            self.status.set_text(usage_text(reply.usage))
            self.streaming(False)
            self.history.append(reply)
            position = await self.store.append(self.conversation_id, reply)
            self.task = None
            if position is not None:
                background_tasks.create(self.fill_cost(reply, position, request_id, shown), name="sluice-ui-cost")

    async def fill_cost(self, reply: Message, position: int, request_id: str, shown: Bubble) -> None:
        """Show (and keep) the answer's tokens and cost from the gateway's usage record once it is written.

        A stopped or failed answer has a record too (what was generated is billed). If the record has not arrived
        after the last try (the database is down; the record waits in the spool), the tokens streamed stay shown.
        """
        for _ in range(COST_TRIES):
            recorded = await self.store.answer_usage(request_id)
            if recorded is not None:
                reply.usage = recorded
                shown.show_usage(recorded)
                if self.status is not None and self.task is None:
                    self.status.set_text(usage_text(recorded))
                await self.store.set_usage(self.conversation_id, position, recorded)
                return
            await asyncio.sleep(COST_PAUSE)

    async def poll_queue(self) -> None:
        assert self.status is not None
        with contextlib.suppress(ApiError):
            waiting = await self.client.json("GET", "/v1/queue")
            text = queue_text(waiting.get("data") or [])
            if text:
                self.status.set_text(text)

    def start(self) -> None:
        self.task = background_tasks.create(self.answer(), name="sluice-ui-answer")

    async def send(self) -> None:
        assert self.prompt is not None and self.model is not None
        content = (self.prompt.value or "").strip()
        if not content or self.task is not None:
            return
        if not self.model.value:
            ui.notify("Pick a model first.", type="warning")
            return
        self.prompt.set_value("")
        message = Message("user", content)
        self.history.append(message)
        untitled = self.title is not None and self.title.text == NEW_CHAT
        await self.store.append(self.conversation_id, message)
        if untitled and self.title is not None:  # the first question names the conversation: show its new name
            found = await self.store.get(self.conversation_id)
            if found is not None:
                self.title.set_text(found.title)
        self.bubble(message)
        self.start()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def regenerate(self) -> None:
        if self.task is not None or not self.history or self.history[-1].role != "assistant":
            return
        self.history.pop()
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
        await self.store.truncate(self.conversation_id, last_user)
        self.render()


async def chat_page(c: str | None = None) -> None:
    client = require()
    if client is None:
        return
    ui.page_title("Sluice · Chat")
    user_id = me().get("user_id")
    if not user_id:
        ui.navigate.to("/login")
        return
    store = ConversationStore(context().services.db, str(user_id))
    models = await attempt(lambda: client.json("GET", "/v1/models"))
    names = sorted(m["id"] for m in (models or {}).get("data", []))
    conversation = await store.get(c) if c else None
    if conversation is None:
        existing = await store.all()
        conversation = existing[0] if existing else await store.create(names[0] if names else None)
    view = ChatView(client, store, conversation.id, context().services.settings.server.request_id_header)
    view.history = await store.messages(conversation.id)
    frame("Chat")

    with ui.left_drawer().classes("bg-slate-50 dark:bg-slate-900"):

        async def new_chat() -> None:
            fresh = await store.create(view.model.value if view.model else None)
            ui.navigate.to(f"/chat?c={fresh.id}")

        ui.button("New chat", icon="add", on_click=new_chat).classes("w-full").props("id=new-chat")
        for item in await store.all():
            with ui.row().classes("w-full items-center no-wrap"):
                link = ui.link(item.title, f"/chat?c={item.id}").classes("grow truncate")
                if item.id == conversation.id:
                    link.classes("font-bold")
                    view.title = link

                def rename(item_id: str = item.id, title: str = item.title) -> None:
                    with transient_dialog() as dialog, ui.card():
                        name = ui.input("Title", value=title).props("autofocus")

                        async def save() -> None:
                            await store.update(item_id, title=(name.value or "Untitled")[:200])
                            dialog.close()
                            ui.navigate.to(f"/chat?c={item_id}")

                        ui.button("Save", on_click=save)
                    dialog.open()

                async def remove(item_id: str = item.id) -> None:
                    await store.delete(item_id)
                    ui.navigate.to("/chat")

                ui.button(icon="edit", on_click=rename).props("flat dense size=sm aria-label='Rename'")
                ui.button(
                    icon="delete", on_click=lambda r=remove: confirm("Delete this conversation?", r, "Delete")
                ).props("flat dense size=sm aria-label='Delete'")

    with ui.column().classes("w-full max-w-4xl mx-auto gap-2"):
        with ui.row().classes("w-full items-end gap-4"):
            view.model = (
                ui.select(
                    names,
                    value=conversation.model if conversation.model in names else (names[0] if names else None),
                    label="Model",
                )
                .classes("w-64")
                .props("id=model")
                .mark("model")
            )
            view.model.on_value_change(lambda e: store.update(conversation.id, model=e.value))
            view.system = (
                ui.textarea("System prompt", value=conversation.system_prompt).classes("grow").props("autogrow rows=1")
            )
            view.system.on("blur", lambda: store.update(conversation.id, system_prompt=view.system.value or ""))
        view.column = ui.column().classes("w-full gap-2").props("id=messages")
        view.render()
        view.status = ui.label("").classes("text-sm text-gray-500").props("id=status").mark("status")
        view.prompt = (
            ui.textarea("Message", placeholder="Ask anything (Ctrl+Enter sends)")
            .classes("w-full")
            .props("autogrow id=prompt")
            .mark("prompt")
        )
        view.prompt.on("keydown.ctrl.enter", view.send)
        with ui.row():
            ui.button("Send", icon="send", on_click=view.send).props("id=send")
            view.stop_button = ui.button("Stop", icon="stop", on_click=view.stop).props("color=negative id=stop")
            view.stop_button.set_visibility(False)
            ui.button("Regenerate", icon="refresh", on_click=view.regenerate).props("flat id=regenerate")
            ui.button("Edit last question", icon="edit", on_click=view.edit_last).props("flat id=edit-last")
