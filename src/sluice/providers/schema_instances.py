"""A small deterministic JSON-schema instance generator, so the mock answers structured requests with valid JSON.

The mock has no model behind it; to let every SDK's ``parse()`` helper and strict tools be tried against it, its
answer to a ``json_schema`` request (and its tool-call arguments) must be an instance of the schema it was given.
:func:`instance_of` builds one from the schema alone plus a seed, so the same request always gets the same answer.

It covers what structured-output schemas use in practice (what OpenAI's strict mode, Anthropic's structured
outputs, Ollama's ``format`` and pydantic's ``model_json_schema`` produce): ``type`` (one or several), ``enum``,
``const``, ``properties`` / ``required`` / ``additionalProperties`` / ``minProperties``, ``items`` /
``prefixItems`` / ``minItems`` / ``maxItems``, string lengths and well-known ``format`` values, numeric bounds and
``multipleOf``, ``anyOf`` / ``oneOf`` (the first branch that can end the recursion), ``allOf`` (merged), local
``$ref`` into ``$defs`` / ``definitions``, and ``not`` only as far as skipping it. Regular-expression ``pattern``
is not generated against (a string of the right length is given); schemas are never fetched (remote ``$ref`` is
treated as "anything").
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 8  # nesting beyond which optional parts are left out and recursion takes its shortest way out
_WORDS = (
    "river",
    "gate",
    "water",
    "boat",
    "calm",
    "flow",
    "stone",
    "bridge",
    "lock",
    "harbour",
    "current",
    "bank",
)
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "river@example.com",
    "uri": "https://example.com/river",
    "url": "https://example.com/river",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "duration": "P1D",
}
_TYPE_ORDER = ("object", "string", "integer", "number", "boolean", "array", "null")


def instance_of(schema: Any, seed: int = 0) -> Any:
    """A value valid against ``schema`` (a JSON-schema object or boolean), the same one for the same seed."""
    return _Builder(schema if isinstance(schema, dict) else {}, seed).build(schema, 0)


class _Builder:
    def __init__(self, root: dict[str, Any], seed: int) -> None:
        self.root = root
        self.seed = seed & 0xFFFFFFFF
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return (self.seed * 2654435761 + self.counter * 40503) & 0xFFFFFFFF

    def _word(self) -> str:
        return _WORDS[self._next() % len(_WORDS)]

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}  # never fetched: a remote schema allows anything as far as this generator knows
        node: Any = self.root
        for raw in ref[1:].split("/"):
            if not raw:
                continue
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return {}
        return node

    def build(self, schema: Any, depth: int) -> Any:
        if schema is True or schema is None:
            return self._word()
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            target = self._resolve(str(schema["$ref"]))
            merged = _merge(target, rest) if rest and isinstance(target, dict) else target
            return self.build(merged, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[self._next() % len(options)]
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                if isinstance(part, dict):
                    merged = _merge(merged, part)
            return self.build(merged, depth)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k != key}
                branch = self._branch(branches, depth)
                return self.build(_merge(rest, branch) if rest and isinstance(branch, dict) else branch, depth)
        return self._typed(schema, _type_of(schema, depth), depth)

    def _branch(self, branches: list[Any], depth: int) -> Any:
        """The first branch, or past the depth bound the one most likely to end the recursion."""
        if depth < MAX_DEPTH:
            return branches[0]
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") in ("null", "string", "integer", "number", "boolean"):
                return branch
        return branches[-1]

    def _typed(self, schema: dict[str, Any], kind: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._next() % 2 == 0
        return None

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = _dict(schema, "properties")
        required = [r for r in schema.get("required") or () if isinstance(r, str)]
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or depth < MAX_DEPTH // 2:
                out[name] = self.build(sub, depth + 1)
        extra = schema.get("additionalProperties", True)
        for name in required:
            if name not in out:
                out[name] = self.build(extra if isinstance(extra, dict) else True, depth + 1)
        minimum = schema.get("minProperties")
        if isinstance(minimum, int) and extra is not False:
            index = 0
            while len(out) < minimum:
                out.setdefault(f"{self._word()}_{index}", self.build(extra if isinstance(extra, dict) else True, depth))
                index += 1
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = _list(schema, "prefixItems")
        items = schema.get("items", True)
        low = _int(schema, "minItems") or 0
        high = _int(schema, "maxItems")
        count = max(low, len(prefix), 0 if depth >= MAX_DEPTH else 1)
        if items is False:
            count = min(count, len(prefix))
        if high is not None:
            count = min(count, high)
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            value = self.build(sub, depth + 1)
            for _ in range(8 if unique else 0):  # another draw, for the few schemas that want distinct items
                if value not in out:
                    break
                value = self.build(sub, depth + 1)
            out.append(value)
        return out

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        low = _int(schema, "minLength") or 0
        high = _int(schema, "maxLength")
        text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
        if not text or (high is not None and len(text) > high) or len(text) < low:
            text = " ".join(self._word() for _ in range(2))
        while len(text) < low:
            text += " " + self._word()
        return text[:high] if high is not None else text

    def _integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        step = int(step) if isinstance(step, int | float) and step >= 1 and float(step).is_integer() else 1
        start = low if low is not None else (high - 10 * step if high is not None else 0)
        candidate = start + self._next() % 10 * step
        candidate = math.ceil(candidate / step) * step
        if high is not None and candidate > high:
            candidate = math.floor(high / step) * step
        if low is not None and candidate < low:
            candidate = math.ceil(low / step) * step
        return int(candidate)

    def _number(self, schema: dict[str, Any]) -> float | int:
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            return _multiple_within(schema, float(step))
        low, high = _bounds(schema, integer=False)
        if low is not None and high is not None:
            return float(low + (high - low) * ((self._next() % 97) / 97))
        if low is not None:
            return float(low + (self._next() % 100) / 4)
        if high is not None:
            return float(high - (self._next() % 100) / 4)
        return (self._next() % 1000) / 4


def _int(schema: dict[str, Any], key: str) -> int | None:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list(schema: dict[str, Any], key: str) -> list[Any]:
    value = schema.get(key)
    return value if isinstance(value, list) else []


def _dict(schema: dict[str, Any], key: str) -> dict[str, Any]:
    value = schema.get(key)
    return value if isinstance(value, dict) else {}


def _type_of(schema: dict[str, Any], depth: int) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and kind:
        names = [k for k in kind if isinstance(k, str)]
        if depth >= MAX_DEPTH and "null" in names:
            return "null"
        return min(names, key=lambda k: _TYPE_ORDER.index(k) if k in _TYPE_ORDER else len(_TYPE_ORDER))
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minLength", "maxLength", "format", "pattern")):
        return "string"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[Any, Any]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    gap = 1 if integer else 1e-6
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        shifted = math.floor(ex_low) + 1 if integer else ex_low + max(gap, abs(ex_low) * 1e-9)
        low = shifted if low is None else max(low, shifted)
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        shifted = math.ceil(ex_high) - 1 if integer else ex_high - max(gap, abs(ex_high) * 1e-9)
        high = shifted if high is None else min(high, shifted)
    if integer:
        low = math.ceil(low) if isinstance(low, int | float) else None
        high = math.floor(high) if isinstance(high, int | float) else None
    return low, high


def _multiple_within(schema: dict[str, Any], step: float) -> float | int:
    """A multiple of ``step`` inside the bounds (the smallest one at or above the lower bound)."""
    low, high = _bounds(schema, integer=False)
    k = math.ceil(low / step) if low is not None else (math.floor(high / step) if high is not None else 1)
    value = k * step
    return int(value) if float(value).is_integer() else value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Two schemas' constraints together (what ``allOf`` and a ``$ref`` with siblings mean)."""
    out = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        elif key == "required" and isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        else:
            out[key] = value
    return out
