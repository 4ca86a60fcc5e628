"""Structured outputs in Anthropic's terms: ``output_config.format`` (and the beta's ``output_format``), strict tools,
and the forced-tool-call fallback for plain JSON mode, which Anthropic has no native form for.

Anthropic constrains an answer to a JSON schema with ``output_config: {"format": {"type": "json_schema", "schema":
...}}`` (the structured-outputs beta spelled it ``output_format`` at the top level; both are read, the GA form is
written) and a tool's arguments with ``tools[].strict``. Its structured outputs want every object closed
(``additionalProperties: false``); schemas from other formats often leave it out, and a constrained decoder
generates only the declared properties anyway, so objects without it are closed on the way in.

JSON mode without a schema (OpenAI ``json_object``, Ollama ``format: "json"``) has no native form: it becomes a
forced call of one extra tool, :data:`JSON_TOOL`, whose input is any object; the answer's call of that tool is
turned back into the JSON text of its input (``decode_*`` in response.py and stream.py take the tool's name).
"""

from __future__ import annotations

from typing import Any

from sluice.canonical import ChatRequest, ResponseFormat
from sluice.codecs import fields as f

JSON_TOOL = "json_answer"
_JSON_TOOL_DEFINITION = {
    "name": JSON_TOOL,
    "description": "Give your whole answer as one JSON object, as the input of this tool.",
    "input_schema": {"type": "object"},
}


def decode_output_format(data: dict[str, Any]) -> tuple[ResponseFormat | None, dict[str, Any]]:
    """The requested JSON format, and what else ``output_config`` holds (kept for an Anthropic upstream)."""
    config = f.opt_obj(data, "output_config")
    rest = {k: v for k, v in (config or {}).items() if k != "format"}
    spec = config.get("format") if config is not None else None
    path = "output_config.format"
    if spec is None:
        spec, path = data.get("output_format"), "output_format"
    if spec is None:
        return None, rest
    spec = f.obj(spec, path)
    if spec.get("type") != "json_schema":
        raise f.bad(f"{path}.type", "'json_schema'")
    schema = f.opt_obj(spec, "schema", f"{path}.schema")
    if schema is None:
        raise f.missing(f"{path}.schema")
    return ResponseFormat("json_schema", schema=schema, name=None, strict=True), rest


def json_tool_wanted(req: ChatRequest) -> bool:
    """Whether plain JSON mode goes to Anthropic as the forced :data:`JSON_TOOL` call.

    Not when the caller forces one of its own tools: the answer is that call, and JSON mode asks nothing more.
    """
    fmt = req.response_format
    if fmt is None or fmt.type != "json_object":
        return False
    choice = req.tool_choice
    return not (req.tools and choice is not None and choice.mode in ("required", "tool"))


def apply_structured(body: dict[str, Any], req: ChatRequest) -> str | None:
    """Put the request's JSON format into an Anthropic body; returns the fallback tool's name when one was added."""
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_schema":
        output = body.setdefault("output_config", {})
        output["format"] = {"type": "json_schema", "schema": closed_objects(fmt.schema or {})}
        return None
    if not json_tool_wanted(req):
        return None
    own_tools = bool(req.tools) and not (req.tool_choice is not None and req.tool_choice.mode == "none")
    kept = (body.get("tools") or []) if own_tools else []
    body["tools"] = [*kept, dict(_JSON_TOOL_DEFINITION)]
    # With the caller's tools still on offer the model may call one of them or answer (through the JSON tool).
    body["tool_choice"] = {"type": "any"} if own_tools else {"type": "tool", "name": JSON_TOOL}
    return JSON_TOOL


def closed_objects(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that does not say otherwise."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed_child(key, value) for key, value in schema.items()}
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _closed_child(key: str, value: Any) -> Any:
    if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
        return {name: closed_objects(sub) for name, sub in value.items()}
    if key in ("const", "enum", "default", "examples", "required"):
        return value  # values, not schemas
    return closed_objects(value)
