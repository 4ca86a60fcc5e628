"""Field readers for decoding client JSON without per-request model validation.

Each reader checks one field's type and range and raises :class:`InvalidRequest` naming the field by its path
(``messages[2].content``), which every surface renders in its own error shape.
"""

from __future__ import annotations

from typing import Any

from sluice.errors import InvalidRequest

MAX_TOKENS_CEILING = 10_000_000
MAX_N = 128


def bad(path: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{path}': expected {expected}.", param=path, code="invalid_value")


def missing(path: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(path, "an object")
    return value


def body_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    return value


def req_str(data: dict[str, Any], key: str, path: str | None = None) -> str:
    value = data.get(key)
    where = path or key
    if value is None:
        raise missing(where)
    if not isinstance(value, str):
        raise bad(where, "a string")
    return value


def opt_str(data: dict[str, Any], key: str, path: str | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(path or key, "a string")
    return value


def opt_bool(data: dict[str, Any], key: str, path: str | None = None) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad(path or key, "a boolean")
    return value


def opt_num(
    data: dict[str, Any], key: str, lo: float | None = None, hi: float | None = None, path: str | None = None
) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    where = path or key
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(where, "a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad(where, f"a number between {lo} and {hi}")
    return float(value)


def opt_int(
    data: dict[str, Any], key: str, lo: int | None = None, hi: int | None = None, path: str | None = None
) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    where = path or key
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad(where, "an integer")
    if lo is not None and value < lo:
        raise bad(where, f"an integer >= {lo}")
    if hi is not None and value > hi:
        raise bad(where, f"an integer <= {hi}")
    return int(value)


def opt_list(data: dict[str, Any], key: str, path: str | None = None) -> list[Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad(path or key, "an array")
    return value


def opt_obj(data: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad(path or key, "an object")
    return value


def stop_list(value: Any, path: str, max_items: int = 16) -> list[str]:
    """A stop sequence field: a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        if len(value) > max_items:
            raise bad(path, f"at most {max_items} stop sequences")
        return list(value)
    raise bad(path, "a string or an array of strings")
