"""RFC 8785 (JCS) serialisation, fast for the JSON an audit event carries.

The bytes are those of `rfc8785.dumps`: strings go through the C JSON string encoder (which escapes
exactly what RFC 8785 escapes: '"', '\\' and U+0000..U+001F, with \\b \\f \\n \\r \\t short forms and
lowercase \\u00xx otherwise), ASCII keys sort the same by code point as by UTF-16 code unit, and
integral doubles below 2**53 print as integers. Anything else (non-ASCII or non-string keys,
non-integral floats are formatted by rfc8785 itself, other types, lone surrogates) is left to
`rfc8785`. tests/unit/test_canonical_fast.py holds this to rfc8785.dumps byte for byte and error for
error with hypothesis.

`json_loads` is the way back: JSON text (the log's `details`, as PostgreSQL returns it) read with
every number a double, the value that was hashed. The API, verification and psycopg's jsonb
loader all use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

import rfc8785

# Integers JSON (IEEE 754 doubles) holds exactly; RFC 8785 refuses others.
SAFE_INT = 2**53 - 1


class NotFastPathError(Exception):
    """A value the fast path leaves to rfc8785 (so that its bytes and errors are kept exactly)."""


def write_value(value: Any, out: list[str]) -> None:
    """Appends the RFC 8785 text of value to out, or raises NotFastPathError."""
    kind = type(value)
    if kind is str:
        out.append(encode_basestring(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        keys = list(value)
        for key in keys:
            # ASCII keys sort the same by code point as by UTF-16 code unit.
            if type(key) is not str or not key.isascii():
                raise NotFastPathError
        keys.sort()
        separator = "{"
        for key in keys:
            out.append(separator)
            out.append(encode_basestring(key))
            out.append(":")
            item = value[key]
            if type(item) is str:  # the common case, without a call
                out.append(encode_basestring(item))
            else:
                write_value(item, out)
            separator = ","
        out.append("}")
    elif kind is list:
        if not value:
            out.append("[]")
            return
        separator = "["
        for item in value:
            out.append(separator)
            write_value(item, out)
            separator = ","
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is float:
        # Integral doubles below 2**53 print as their exact integer in ECMAScript (-0 as 0).
        if value.is_integer() and -SAFE_INT <= value <= SAFE_INT:
            out.append(str(int(value)))
        else:
            out.append(rfc8785.dumps(value).decode())
    elif kind is int and -SAFE_INT <= value <= SAFE_INT:
        out.append(str(value))
    else:
        raise NotFastPathError


def jcs_text(value: Any) -> str:
    """RFC 8785 serialisation of any JSON value as text (rfc8785.dumps(value) decoded, faster): what
    the log stores and hashes for details."""
    out: list[str] = []
    try:
        write_value(value, out)
        text = "".join(out)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate: rfc8785 decides
        return text
    except (NotFastPathError, UnicodeEncodeError):
        return bytes(rfc8785.dumps(value)).decode("utf-8")


# JSON numbers are IEEE 754 doubles (RFC 8785 hashes them as such). jsonb keeps them as exact
# decimals and may print a double as a long integer (1e300 -> "1000...0"); reading every number back
# as a float restores the value that was hashed.
_JSON_DECODER = json.JSONDecoder(parse_int=float)
# The decoder's C scanner (set by JSONDecoder.__init__; typeshed does not declare the attribute).
_scan_json: Callable[[str, int], tuple[Any, int]] = _JSON_DECODER.scan_once  # type: ignore[attr-defined]


def json_loads(data: str | bytes) -> Any:
    """json.loads(data, parse_int=float), without building a decoder per call (json.loads does
    that whenever it is given an argument, on the path that reads every stored event)."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    # The decoder's C scanner straight away: decode() adds two whitespace matches around it in
    # Python, and PostgreSQL's JSON text has no whitespace around the value. Anything else (or an
    # error) goes through decode() itself, for its exact result or error.
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError):
        return _JSON_DECODER.decode(text)
    return value if end == len(text) else _JSON_DECODER.decode(text)
