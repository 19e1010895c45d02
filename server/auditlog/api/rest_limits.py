"""Size bounds of REST calls. Envoy's transcoder buffers a unary request and its answer whole; past
its bounds it answers 413 (request) or 500 (answer, after the work was done). So the server keeps
every answer to a transcoded call under MAX_REST_ANSWER_BYTES of JSON, refusing a call whose answer
could not fit before doing any work, and the gateway is configured with the same figures."""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc

from auditlog.domain.event import EventRecord, NewEvent
from auditlog.domain.jcs import jcs_text

MAX_REST_BODY_BYTES = 16 << 20  # as the gRPC server's receive limit
# A gRPC message travels behind a 5-byte prefix (flag, length), which the receive limit does not count.
GRPC_FRAME_PREFIX_BYTES = 5
MAX_REST_ANSWER_BYTES = 64 << 20
MAX_REST_HEADERS_KB = 60  # Envoy's default, stated
# Keys, punctuation, id, sequence, three hex hashes and two timestamps of one event in JSON, rounded up.
_EVENT_FIXED_JSON = 1_024
# Characters the JSON printer may escape: it writes `<`, `>`, controls and some Unicode as \uXXXX
# (an astral one as two), so each counts for 12 bytes; every other character for one.
_ESCAPABLE = re.compile(r'[^\x20-\x7e]|[<>"\\]')
_TEXT_FIELDS = ("event_type", "user_id", "action", "resource_type", "resource_id", "risk_level")
_MORE_TEXT_FIELDS = ("ip_address", "user_agent", "session_id", "request_id")
# The gRPC path Envoy's transcoder called: present exactly on calls that came in as REST.
_TRANSCODED = "x-envoy-original-path"


def transcoded(context: grpc.ServicerContext) -> bool:
    """Whether the call came through the REST gateway's transcoder."""
    return any(key == _TRANSCODED for key, _ in context.invocation_metadata())


def text_json_bound(text: str) -> int:
    """At most how many bytes text takes in the JSON printer's output."""
    escapable = len(_ESCAPABLE.findall(text)) if not text.isascii() or _ESCAPABLE.search(text) else 0
    return len(text) + 11 * escapable


def event_json_bound(event: NewEvent | EventRecord) -> int:
    """At most how many bytes event takes in an answer's JSON (as an AuditEvent)."""
    details = event.details_json if event.details_json is not None else jcs_text(event.details)
    # The printer writes a negative exponent with two digits (1e-07) where the canonical text has one.
    size = _EVENT_FIXED_JSON + text_json_bound(details) + details.count("e-")
    for name in _TEXT_FIELDS + _MORE_TEXT_FIELDS:
        size += text_json_bound(getattr(event, name))
    return size


def fitting_count(events: Iterable[NewEvent | EventRecord]) -> int:
    """How many of events, from the first, fit in one REST answer."""
    total = count = 0
    for event in events:
        total += event_json_bound(event)
        if total > MAX_REST_ANSWER_BYTES:
            break
        count += 1
    return count
