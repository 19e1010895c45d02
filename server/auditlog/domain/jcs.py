"""RFC 8785 (JCS) serialisation, fast for the JSON an audit event carries.

The bytes are those of `rfc8785.dumps`: strings go through the C JSON string encoder (which escapes
exactly what RFC 8785 escapes: '"', '\\' and U+0000..U+001F, with \\b \\f \\n \\r \\t short forms and
lowercase \\u00xx otherwise), ASCII keys sort the same by code point as by UTF-16 code unit, and
integral doubles below 2**53 print as integers. Anything else (non-ASCII or non-string keys,
non-integral floats are formatted by rfc8785 itself, other types, lone surrogates) is left to
`rfc8785`. tests/test_canonical_fast.py holds this to rfc8785.dumps byte for byte and error for
error with hypothesis.
"""

from __future__ import annotations

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


def jcs_dumps(value: Any) -> bytes:
    """RFC 8785 serialisation of any JSON value: the bytes of rfc8785.dumps(value), faster."""
    out: list[str] = []
    try:
        write_value(value, out)
        return "".join(out).encode("utf-8")
    except (NotFastPathError, UnicodeEncodeError):
        return bytes(rfc8785.dumps(value))


def jcs_text(value: Any) -> str:
    """jcs_dumps(value) as text (the UTF-8 it encodes): what the log stores and hashes for details."""
    out: list[str] = []
    try:
        write_value(value, out)
        text = "".join(out)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate: rfc8785 decides, as in jcs_dumps
        return text
    except (NotFastPathError, UnicodeEncodeError):
        return bytes(rfc8785.dumps(value)).decode("utf-8")
