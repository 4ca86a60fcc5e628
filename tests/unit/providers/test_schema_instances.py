"""The mock's JSON-schema instance generator: every instance it makes validates against its schema."""

from __future__ import annotations

import enum
from typing import Any, Literal

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sluice.providers.schema_instances import instance_of


def assert_valid(schema: Any, instance: Any) -> None:
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=str)
    assert not errors, f"{instance!r} does not match {schema!r}: {errors[0].message}"


_SCALARS: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(
        lambda low, extra: {"type": "string", "minLength": low, **({"maxLength": low + extra} if extra >= 0 else {})},
        st.integers(0, 40),
        st.integers(-1, 20),
    ),
    st.sampled_from(["date-time", "date", "email", "uri", "uuid"]).map(lambda f: {"type": "string", "format": f}),
    st.builds(
        lambda low, width, step: {"type": "integer", "minimum": low, "maximum": low + width * step, "multipleOf": step},
        st.integers(-1000, 1000),
        st.integers(1, 50),
        st.integers(1, 7),
    ),
    st.builds(
        lambda low, width: {"type": "number", "exclusiveMinimum": low, "maximum": low + width},
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(0.5, 1e3, allow_nan=False),
    ),
    st.builds(lambda step: {"type": "number", "multipleOf": step, "minimum": 3}, st.sampled_from([0.5, 0.25, 2, 10])),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.text(max_size=8) | st.integers(), min_size=1, max_size=5, unique=True).map(lambda v: {"enum": v}),
    st.integers().map(lambda v: {"const": v}),
    st.just({"type": ["string", "null"]}),
)


def _compound(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.text(st.characters(categories=["Ll"]), min_size=1, max_size=6)
    objects = st.dictionaries(names, children, max_size=4).flatmap(
        lambda props: st.builds(
            lambda required, closed: {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": not closed,
            },
            st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            st.booleans(),
        )
    )
    arrays = st.builds(
        lambda items, low, extra, unique: {
            "type": "array",
            "items": items,
            "minItems": low,
            "maxItems": low + extra,
            **({"uniqueItems": True} if unique else {}),
        },
        children,
        st.integers(0, 3),
        st.integers(0, 3),
        st.just(False),
    )
    either = st.builds(lambda a: {"anyOf": [a, {"type": "null"}]}, children)
    merged = st.builds(
        lambda a, b: {"allOf": [{**a, "additionalProperties": True}, b]},  # a closed part would refuse "extra"
        objects,
        st.just({"type": "object", "properties": {"extra": {"type": "integer", "minimum": 5}}, "required": ["extra"]}),
    )
    return st.one_of(objects, arrays, either, merged)


SCHEMAS = st.recursive(_SCALARS, _compound, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(SCHEMAS, st.integers(0, 2**32 - 1))
def test_every_generated_instance_validates(schema: dict[str, Any], seed: int) -> None:
    assert_valid(schema, instance_of(schema, seed))


@settings(max_examples=50, deadline=None)
@given(SCHEMAS, st.integers(0, 2**32 - 1))
def test_the_same_seed_gives_the_same_instance(schema: dict[str, Any], seed: int) -> None:
    assert instance_of(schema, seed) == instance_of(schema, seed)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    zip_code: str = pydantic.Field(min_length=5, max_length=5)


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0, le=130)
    colour: Colour
    kind: Literal["human", "robot"]
    address: Address | None
    friends: list[Person] = []
    scores: dict[str, float] = {}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_pydantic_schemas_with_defs_and_recursion_give_instances_pydantic_accepts(seed: int) -> None:
    schema = Person.model_json_schema()
    value = instance_of(schema, seed)
    assert_valid(schema, value)
    Person.model_validate(value)


def test_openai_strict_schema_has_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "array", "items": {"type": "object", "properties": {"t": {"type": "number"}}}},
        },
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    value = instance_of(schema, 7)
    assert set(value) == {"city", "days"} and value["days"] and "t" in value["days"][0]
    assert_valid(schema, value)


def test_a_local_ref_that_does_not_resolve_allows_anything() -> None:
    assert instance_of({"$ref": "#/$defs/missing"}, 1) is not None
    assert instance_of(True, 1) is not None
