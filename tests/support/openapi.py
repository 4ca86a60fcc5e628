"""Validate Sluice's OpenAI-compatible responses against OpenAI's published OpenAPI description.

The spec mixes OpenAPI 3.0's ``nullable: true`` into a 3.1 document; JSON Schema has no such keyword, so it is
rewritten into ``type: [..., "null"]`` (or an ``anyOf`` with null) before validation.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_CANDIDATES = [
    os.environ.get("SLUICE_OPENAPI_SPEC", ""),
    str(Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml"),  # ../shared/specs
    "/work/shared/specs/openai-openapi.yaml",  # the workspace, for clean clones made elsewhere (CI checks)
]
SPEC_PATH = next((Path(c) for c in _CANDIDATES if c and Path(c).is_file()), Path(_CANDIDATES[1]))
SPEC_URI = "urn:openai-openapi"


def spec_available() -> bool:
    return SPEC_PATH.is_file()


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if kind is not None:
            out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _registry() -> Registry[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = _nullable(yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader))
    return Registry().with_resource(SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012))


@cache
def validator(schema_name: str) -> Draft202012Validator:
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=_registry())


def validate(schema_name: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError (with the failing path) if ``instance`` does not match."""
    error = next(iter(validator(schema_name).iter_errors(instance)), None)
    if error is not None:
        raise AssertionError(f"{schema_name} violation at {list(error.absolute_path)}: {error.message}")
