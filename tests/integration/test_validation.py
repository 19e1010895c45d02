"""Every validation rule: refused with INVALID_ARGUMENT naming the field, and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc, event_pb2
from auditlog.domain.validation import MAX_DETAILS_BYTES, parse_datetime, validate_new_event
from auditlog.errors import InvalidArgumentError
from auditlog_client import AuditClient, InvalidArgument

VALID: dict[str, Any] = {"event_type": "user.login", "action": "login"}

# field -> (bad value, words the description must contain)
BAD_FIELDS: dict[str, tuple[str, str]] = {
    "event_type": ("x" * 129, "want at most 128"),
    "user_id": ("u" * 257, "want at most 256"),
    "action": ("a" * 129, "want at most 128"),
    "resource_type": ("r" * 129, "want at most 128"),
    "resource_id": ("r" * 257, "want at most 256"),
    "user_agent": ("m" * 1025, "want at most 1024"),
    "session_id": ("s" * 257, "want at most 256"),
    "request_id": ("q" * 129, "want at most 128"),
    "risk_level": ("severe", "want one of low, medium, high, critical"),
    "ip_address": ("192.168.1.300", "want an IPv4 or IPv6 address"),
    "occurred_at": ("2024-13-01T00:00:00", "want an RFC 3339 date-time"),
}


def _violations(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    result = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        result.update({v.field: v.description for v in bad_request.field_violations})
    return result


@pytest.mark.parametrize("field", list(BAD_FIELDS))
def test_bad_field_is_refused_with_its_name_and_nothing_is_written(
    stub: audit_service_pb2_grpc.AuditServiceStub, client: AuditClient, field: str
) -> None:
    value, expected = BAD_FIELDS[field]
    request = pb.CreateEventRequest(event=event_pb2.EventInput(**{**VALID, field: value}))
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateEvent(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(info.value)
    assert list(violations) == [f"event.{field}"]
    assert expected in violations[f"event.{field}"]
    assert client.get_stats().total_events == 0


@pytest.mark.parametrize("field", ["event_type", "action"])
def test_required_field_missing_is_refused(client: AuditClient, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.create_event(**{**VALID, field: "  "})
    assert [v.field for v in info.value.violations] == [f"event.{field}"]


def test_control_characters_in_text_are_refused(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.create_event(event_type="user.login\n", action="lo\x00gin")
    assert {v.field for v in info.value.violations} == {"event.event_type", "event.action"}


def test_details_larger_than_64_kib_are_refused(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.create_event(**VALID, details={"blob": "x" * MAX_DETAILS_BYTES})
    assert info.value.violations[0].field == "event.details"
    assert f"want at most {MAX_DETAILS_BYTES}" in info.value.violations[0].description
    fits = client.create_event(**VALID, details={"blob": "x" * (MAX_DETAILS_BYTES - 20)})
    assert fits.sequence == 0


def test_nul_inside_details_is_refused_with_its_path(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.create_event(**VALID, details={"outer": {"inner": ["ok", "bad\x00"]}})
    assert info.value.violations[0].field == "event.details.outer.inner[1]"


def test_every_problem_is_reported_at_once(client: AuditClient) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.create_event(event_type="", action="", risk_level="x", ip_address="nope")
    assert {v.field for v in info.value.violations} == {
        "event.event_type",
        "event.action",
        "event.risk_level",
        "event.ip_address",
    }


def test_ip_addresses_are_stored_normalised(client: AuditClient) -> None:
    assert client.create_event(**VALID, ip_address="2001:DB8:0:0:0:0:0:1").ip_address == "2001:db8::1"
    assert client.create_event(**VALID, ip_address=" 10.0.0.1 ").ip_address == "10.0.0.1"
    assert client.create_event(**VALID, ip_address="fe80::1%eth0").ip_address == "fe80::1%eth0"


@pytest.mark.parametrize("scope", ["x" * 100_000, "eth\x01", "eth0\n"])
def test_ipv6_scope_ids_are_bounded_like_other_text(client: AuditClient, scope: str) -> None:
    """ipaddress takes any text after '%' as a scope id; an event must not grow unbounded through it."""
    with pytest.raises(InvalidArgument) as info:
        client.create_event(**VALID, ip_address="fe80::1%" + scope)
    assert [(v.field, v.description.split(", ", 1)[1]) for v in info.value.violations] == [
        ("event.ip_address", "want an IPv4 or IPv6 address of at most 64 characters")
    ]
    assert client.get_stats().total_events == 0


def test_page_size_bounds(client: AuditClient) -> None:
    assert client.list_events(page_size=0).page_size == 50
    assert client.list_events(page_size=1000).page_size == 1000
    for bad in (-1, 1001):
        with pytest.raises(InvalidArgument) as info:
            client.list_events(page_size=bad)
        assert info.value.violations[0].field == "page_size"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T01:30:00+01:30", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-31T23:59:59.5", datetime(2024, 1, 31, 23, 59, 59, 500000, tzinfo=UTC)),
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01 12:00:00z", datetime(2024, 1, 1, 12, tzinfo=UTC)),
        # A query string's `+` read as a space by form decoding.
        ("2024-01-01T01:30:00 01:30", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_dates_with_or_without_offset_are_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_datetime("start_date", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2024-02-30T00:00:00",
        "2024-01-01T25:00:00",
        "1704067200",
        # Digits of other scripts (full-width, Arabic-Indic) are not RFC 3339 digits.
        "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff14-01-01",
        "2024-01-01T00:00:00+\u0660\u0661:00",
    ],
)
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_datetime("start_date", text)
    assert info.value.violations[0].field == "start_date"


def test_validated_event_keeps_values_as_given() -> None:
    event = validate_new_event({**VALID, "risk_level": "critical", "user_id": "ü"}, {"k": 1.0})
    assert (event.event_type, event.risk_level, event.user_id, event.details) == (
        "user.login",
        "critical",
        "ü",
        {"k": 1.0},
    )
