"""How one answer is shown: Markdown (see :mod:`sluice.web.markdown`) split around its fenced code blocks, each
block with its own copy button, and the usage line of an answer (tokens and cost).

The split is redone on every streamed piece, but only the last segment normally changes, so the page updates one
element per piece; a segment whose kind changes (a fence just opened or closed) is rebuilt from there on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from sluice.web.markdown import markdown_html, safe_html
from sluice.web.money import money

FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*$")


@dataclass(frozen=True, slots=True)
class Segment:
    """Markdown prose, or the inside of one fenced code block (``language`` as the fence named it)."""

    kind: str  # "text" | "code"
    content: str
    language: str = ""


def split_fences(text: str) -> list[Segment]:
    """Cut Markdown into prose and fenced code blocks, in order. A block still open (mid-stream) runs to the end;
    a fence closes only with the same character, at least as long, on a line of its own (CommonMark's rule)."""
    segments: list[Segment] = []
    prose: list[str] = []
    code: list[str] = []
    opener: str | None = None
    language = ""
    for line in text.split("\n"):
        if opener is None:
            found = FENCE.match(line)
            if found:
                if prose:
                    segments.append(Segment("text", "\n".join(prose)))
                    prose = []
                opener, language, code = found.group(1), found.group(2), []
            else:
                prose.append(line)
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {opener[0]} and len(stripped) >= len(opener):
            segments.append(Segment("code", "\n".join(code), language))
            opener = None
        else:
            code.append(line)
    if opener is not None:
        segments.append(Segment("code", "\n".join(code), language))
    elif prose and any(p.strip() for p in prose):
        segments.append(Segment("text", "\n".join(prose)))
    return segments


def fenced(segment: Segment) -> str:
    """A code segment back as a Markdown fence long enough that no run of backticks inside it closes it."""
    longest = max((len(run) for run in re.findall(r"`+", segment.content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{segment.language}\n{segment.content}\n{fence}"


def rendered(text: str) -> ui.html:
    """An element showing ``text`` as Markdown; its content is sanitised on the server whenever it changes."""
    return ui.html(markdown_html(text), sanitize=safe_html)


class CodeBlock:
    """One fenced block on the page: highlighted by the Markdown renderer, with a button copying just its code."""

    def __init__(self, segment: Segment) -> None:
        self.code = segment.content
        with ui.column().classes("answer-code w-full gap-0 relative") as self.root:
            self.markdown = rendered(fenced(segment)).classes("answer-part w-full")
            ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(self.code)).props(
                "flat dense size=sm aria-label='Copy code'"
            ).classes("absolute top-1 right-1").mark("copy-code")

    def show(self, segment: Segment) -> None:
        self.code = segment.content
        self.markdown.set_content(markdown_html(fenced(segment)))

    def delete(self) -> None:
        self.root.delete()


class AnswerView:
    """The rendered body of one message, kept in step with its text as it grows."""

    def __init__(self, container: ui.element) -> None:
        self.container = container
        self.segments: list[Segment] = []
        self.elements: list[ui.html | CodeBlock] = []

    def update(self, text: str) -> None:
        fresh = split_fences(text)
        keep = 0
        while (
            keep < len(self.segments)
            and keep < len(fresh)
            and self.segments[keep].kind == fresh[keep].kind
            and self.segments[keep].language == fresh[keep].language
        ):
            keep += 1
        for index in range(keep):  # same kind as before: only the content may have changed (the last one grew)
            if self.segments[index] != fresh[index]:
                self._show(self.elements[index], fresh[index])
        for element in self.elements[keep:]:
            element.delete()
        del self.elements[keep:]
        with self.container:
            for segment in fresh[keep:]:
                self.elements.append(
                    CodeBlock(segment) if segment.kind == "code" else rendered(segment.content).classes("answer-part")
                )
        self.segments = fresh

    @staticmethod
    def _show(element: ui.html | CodeBlock, segment: Segment) -> None:
        if isinstance(element, CodeBlock):
            element.show(segment)
        else:
            element.set_content(markdown_html(segment.content))


def recorded_usage(entry: dict[str, Any]) -> dict[str, Any]:
    """What an answer keeps of its request-log entry (``GET /admin/v1/requests``): tokens, cost, estimation."""
    return {
        "prompt_tokens": entry["prompt_tokens"],
        "completion_tokens": entry["completion_tokens"],
        "cost": entry["cost"],
        "estimated": entry["estimated"],
        "request_id": entry["request_id"],
    }


def usage_line(usage: dict[str, Any] | None, currency: str = "USD") -> str:
    """'mock-1 · 12 tokens in, 34 out · $0.00021' (the cost once the gateway's usage record is read)."""
    if not usage:
        return ""
    parts = [str(usage["model"])] if usage.get("model") else []
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        parts.append(f"{usage.get('prompt_tokens', 0)} tokens in, {usage.get('completion_tokens', 0)} out")
    if usage.get("cost") is not None:
        parts.append(money(float(usage["cost"]), currency) + (" (estimated tokens)" if usage.get("estimated") else ""))
    return " · ".join(parts)
