"""The fake OpenAI's Responses API (``/v1/responses``): Response objects and the typed event stream, as OpenAI sends
them (every event with ``event:`` and ``sequence_number``, ending in ``response.completed``)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from .delivery import Frame, StreamPlan, encode_json
from .script import JsonObject, Reply, new_id, split_text

_SSE = "text/event-stream; charset=utf-8"
_ARG_PIECE = 8


def _usage(reply: Reply) -> JsonObject:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


class _Answer:
    def __init__(self, reply: Reply, body: JsonObject) -> None:
        self.reply = reply
        self.body = body
        self.id = new_id("resp_")
        self.created = int(time.time())
        self.model = reply.model or str(body.get("model") or "gpt-fake")
        self.sequence = itertools.count()

    def response(self, status: str, output: list[JsonObject]) -> JsonObject:
        body = self.body
        response: JsonObject = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "metadata": body.get("metadata") or {},
        }
        if status in ("completed", "incomplete") and self.reply.usage:
            response["usage"] = _usage(self.reply)
        return response

    def output(self) -> list[JsonObject]:
        reply = self.reply
        items: list[JsonObject] = []
        if reply.thinking is not None:
            items.append(
                {
                    "type": "reasoning",
                    "id": new_id("rs_"),
                    "summary": [{"type": "summary_text", "text": reply.thinking}],
                }
            )
        if reply.text or not reply.tool_calls:
            content = [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}]
            items.append(
                {
                    "type": "message",
                    "id": new_id("msg_"),
                    "status": "completed",
                    "role": "assistant",
                    "content": content,
                }
            )
        for call in reply.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "id": new_id("fc_"),
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments_json(),
                    "status": "completed",
                }
            )
        return items

    @property
    def status(self) -> str:
        return "incomplete" if self.reply.effective_finish == "length" else "completed"

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": next(self.sequence)}
        return b"event: " + kind.encode() + b"\ndata: " + encode_json(payload) + b"\n\n"


def response_object(reply: Reply, body: JsonObject) -> JsonObject:
    answer = _Answer(reply, body)
    return answer.response(answer.status, answer.output())


def response_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    answer = _Answer(reply, body)
    ev = answer.event
    frames = [Frame(ev("response.created", response=answer.response("in_progress", [])), "head")]
    frames.append(Frame(ev("response.in_progress", response=answer.response("in_progress", [])), "head"))
    output = answer.output()
    text_item: JsonObject | None = None
    for index, item in enumerate(output):
        if item["type"] == "message":
            text_item = item
            opened = {**item, "status": "in_progress", "content": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            frames.append(Frame(ev("response.output_item.added", output_index=index, item=opened), "head"))
            frames.append(Frame(ev("response.content_part.added", part=empty, **where), "head"))
            frames += [Frame(ev("response.output_text.delta", delta=p, logprobs=[], **where)) for p in reply.pieces()]
            frames.append(Frame(ev("response.output_text.done", text=reply.text, logprobs=[], **where), "meta"))
            frames.append(Frame(ev("response.content_part.done", part=item["content"][0], **where), "meta"))
        elif item["type"] == "function_call":
            opened = {**item, "arguments": "", "status": "in_progress"}
            frames.append(Frame(ev("response.output_item.added", output_index=index, item=opened), "meta"))
            for fragment in split_text(item["arguments"], _ARG_PIECE):
                frames.append(
                    Frame(
                        ev(
                            "response.function_call_arguments.delta",
                            item_id=item["id"],
                            output_index=index,
                            delta=fragment,
                        )
                    )
                )
            done = {"item_id": item["id"], "output_index": index, "name": item["name"], "arguments": item["arguments"]}
            frames.append(Frame(ev("response.function_call_arguments.done", **done), "meta"))
        else:
            frames.append(Frame(ev("response.output_item.added", output_index=index, item=item), "meta"))
        frames.append(Frame(ev("response.output_item.done", output_index=index, item=item), "meta"))
    final = "response.completed" if answer.status == "completed" else "response.incomplete"
    frames.append(Frame(ev(final, response=answer.response(answer.status, output)), "end"))
    where = {"item_id": text_item["id"] if text_item else "msg_x", "output_index": 0, "content_index": 0}
    return StreamPlan(
        content_type=_SSE,
        frames=frames,
        piece=lambda text: ev("response.output_text.delta", delta=text, logprobs=[], **where),
        error=lambda message: ev(
            "error",
            code="server_error",
            message=message or "The server had an error while processing your request.",
            param=None,
        ),
        bad=b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n',
    )


def input_tokens(reply: Reply) -> JsonObject:
    return {"object": "response.input_tokens", "input_tokens": reply.prompt_tokens}
