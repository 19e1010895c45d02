"""A request's details Struct reads exactly as json_format.MessageToDict (numbers as doubles) reads
it, and keeps the NaN and infinities json_format refuses."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.api.convert import _details_and_exactness, _numbers_as_doubles

JSON: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-(2**60), 2**60), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def details_from_proto(details: struct_pb2.Struct) -> dict[str, Any]:
    return _details_and_exactness(details)[0]


def outcome(convert: Any, struct: struct_pb2.Struct) -> Any:
    try:
        return ("ok", convert(struct))
    except Exception as err:
        return ("error", type(err))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_details_from_proto_equals_message_to_dict_with_doubles(details: dict[str, Any]) -> None:
    struct = struct_pb2.Struct()
    struct.update(details)
    expected = outcome(lambda s: _numbers_as_doubles(json_format.MessageToDict(s)), struct)
    if expected[0] == "error":
        # json_format refuses NaN and infinities; they are kept for validation to name.
        expected = ("ok", _numbers_as_doubles(details))
    assert same(outcome(details_from_proto, struct), expected)


def test_unset_value_reads_as_null_like_json_format() -> None:
    struct = struct_pb2.Struct()
    struct.fields["x"].SetInParent()
    assert details_from_proto(struct) == _numbers_as_doubles(json_format.MessageToDict(struct))
