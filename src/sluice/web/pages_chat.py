"""The chat page, laid out as people know it from ChatGPT and Open WebUI: conversations in a side drawer (behind a
menu button on a phone), the answers in the middle, and the composer docked at the bottom — Enter sends,
Shift+Enter starts a new line — with Stop, Regenerate and Edit beside it. The page follows a streamed answer
unless the reader scrolls up (``static/chat.js``).
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sluice.web.chat_view import ChatView
from sluice.web.context import UiContext
from sluice.web.conversations import ChatSettings, ConversationStore
from sluice.web.layout import attempt, confirm, frame, heading, static_url, transient_dialog
from sluice.web.session import me, require

TITLE_LIMIT = 200
# Enter sends; Shift+Enter (or Enter while an input method composes a character) is left to the text box.
ENTER_SENDS = "(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); emit(); } }"


async def chat_page(context: UiContext, c: str | None = None) -> None:
    client = require(context)
    if client is None:
        return
    user_id = me().get("user_id")
    if not user_id:
        ui.navigate.to("/login")
        return
    ui.page_title("Sluice · Chat")
    ui.add_head_html(f'<script defer src="{static_url("chat.js")}"></script>')
    store = ConversationStore(context.db, str(user_id))
    models = await attempt(lambda: client.json("GET", "/v1/models"))
    names = sorted(m["id"] for m in (models or {}).get("data", []))
    conversation = await store.get(c) if c else None  # another user's id opens a new chat of one's own
    settings = ChatSettings.of(conversation) if conversation is not None else ChatSettings()
    if settings.model not in names:
        settings.model = names[0] if names else None
    view = ChatView(
        client,
        store,
        settings,
        conversation.id if conversation is not None else None,
        context.request_id_header,
        context.currency,
    )
    if conversation is not None:
        view.history = await store.messages(conversation.id)

    drawer = ui.left_drawer().classes("bg-slate-50 dark:bg-slate-900").props("aria-label=Conversations")
    frame(context, "Chat", menu=drawer.toggle, visible_title=False)
    with drawer:
        await history_drawer(store, view)

    with ui.column().classes("w-full max-w-4xl mx-auto gap-2"):
        with ui.row().classes("w-full items-end gap-2 no-wrap"):
            picker = ui.select(names, value=settings.model, label="Model").classes("w-64").props("id=model")
            picker.mark("model").on_value_change(lambda e: view.change_settings(model=e.value))
            ui.button(icon="tune", on_click=lambda: settings_dialog(view)).props(
                "flat round aria-label='Chat settings'"
            ).mark("chat-settings")
        view.column = (
            ui.column()
            .classes("w-full gap-2")
            .props("id=messages role=log aria-live=polite aria-label='Messages'")
            .mark("messages")
        )
        view.render()

    with ui.footer().classes("chat-composer"), ui.column().classes("w-full max-w-4xl mx-auto gap-1"):
        view.status = (
            ui.label("").classes("text-sm text-gray-500").props("id=status role=status aria-live=polite").mark("status")
        )
        with ui.row().classes("w-full items-end gap-2 no-wrap"):
            view.prompt = (
                ui.textarea(placeholder="Ask anything")
                .classes("grow")
                .props(
                    "autogrow outlined dense rows=1 id=prompt aria-label=Message aria-describedby=prompt-hint "
                    "input-style='max-height: 30vh'"
                )
                .mark("prompt")
            )
            view.prompt.on("keydown", view.send, js_handler=ENTER_SENDS)
            view.send_button = (
                ui.button(icon="send", on_click=view.send).props("round id=send aria-label=Send").mark("send")
            )
            view.stop_button = ui.button(icon="stop", on_click=view.stop).props(
                "round color=negative id=stop aria-label=Stop"
            )
        with ui.row().classes("gap-1 items-center"):
            view.regenerate_button = ui.button("Regenerate", on_click=view.regenerate).props(
                "flat dense no-caps id=regenerate"
            )
            view.edit_button = ui.button("Edit last question", on_click=view.edit_last).props(
                "flat dense no-caps id=edit-last"
            )
            ui.label("Enter sends · Shift+Enter adds a line").classes("text-xs text-gray-500 max-sm:hidden").props(
                "id=prompt-hint"
            )
    view.sync_actions()


async def history_drawer(store: ConversationStore, view: ChatView) -> None:
    """New chat, search, and the user's conversations (renamed in place, deleted after naming them)."""
    heading("Conversations", 2, "text-base font-semibold")
    ui.button("New chat", icon="add", on_click=lambda: ui.navigate.to("/chat")).classes("w-full").props(
        "id=new-chat aria-label='New chat'"
    )
    search = ui.input(placeholder="Search chats").props("dense clearable aria-label='Search chats'").classes("w-full")
    listing = ui.column().classes("w-full gap-0").mark("history")

    async def show() -> None:
        needle = (search.value or "").strip()
        found = await (store.search(needle) if needle else store.all())
        listing.clear()
        with listing:
            if not found:
                ui.label("No chat matches." if needle else "No chats yet.").classes("text-sm text-gray-500")
            for item in found:
                history_entry(store, view, item.id, item.title, show)

    search.on_value_change(show)
    view.on_stored = show
    await show()


def history_entry(store: ConversationStore, view: ChatView, item_id: str, title: str, refresh: Any) -> None:
    with ui.row().classes("w-full items-center no-wrap").mark(f"chat-{item_id}"):
        link = ui.link(title, f"/chat?c={item_id}").classes("grow truncate")
        if item_id == view.conversation_id:
            link.classes("font-bold").props("aria-current=page")

        def rename() -> None:
            with transient_dialog() as dialog, ui.card().classes("w-80"):
                name = ui.input("Title", value=link.text).props("autofocus").classes("w-full")

                async def save() -> None:
                    fresh = (name.value or "").strip()[:TITLE_LIMIT] or "Untitled"
                    await store.update(item_id, title=fresh)
                    link.set_text(fresh)  # in place: the reader stays where they are
                    dialog.close()

                name.on("keydown.enter", save)
                with ui.row():
                    ui.button("Save", on_click=save)
                    ui.button("Cancel", on_click=dialog.close).props("flat")
            dialog.open()

        async def remove() -> None:
            await store.delete(item_id)
            if item_id == view.conversation_id:
                ui.navigate.to("/chat")
            else:
                await refresh()

        renaming = ui.button(icon="edit", on_click=rename).props("flat dense size=sm")
        renaming.props["aria-label"] = f"Rename {title}"  # set as a value: a title may hold quotes
        deleting = ui.button(
            icon="delete", on_click=lambda: confirm(f"Delete the conversation “{link.text}”?", remove, "Delete")
        ).props("flat dense size=sm")
        deleting.props["aria-label"] = f"Delete {title}"


def settings_dialog(view: ChatView) -> None:
    """Temperature, answer length and system prompt of this chat (kept with it)."""
    settings = view.settings
    with transient_dialog() as dialog, ui.card().classes("w-[28rem] max-w-full").mark("settings-dialog"):
        heading("Chat settings", 2, "text-lg font-semibold")
        system = ui.textarea("System prompt", value=settings.system_prompt).props("autogrow").classes("w-full")
        temperature = ui.number(
            "Temperature (empty: model default)", value=settings.temperature, min=0, max=2, step=0.1
        ).classes("w-full")
        max_tokens = ui.number(
            "Max tokens per answer (empty: model default)", value=settings.max_tokens, min=1, precision=0
        ).classes("w-full")

        async def save() -> None:
            await view.change_settings(
                system_prompt=system.value or "",
                temperature=float(temperature.value) if temperature.value is not None else None,
                max_tokens=int(max_tokens.value) if max_tokens.value is not None else None,
            )
            dialog.close()
            ui.notify("Chat settings saved.", type="positive")

        with ui.row():
            ui.button("Save", on_click=save)
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()
