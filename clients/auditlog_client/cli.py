"""auditctl: a small command line over AuditClient (JSON out, one object per line)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, EncodeError, Message

from audit.v1.audit_service_pb2 import CreateEventRequest
from auditlog_client.client import AuditClient, event_input
from auditlog_client.errors import AuditLogClientError
from auditlog_client.offline import INVALID, OFFLINE, OptionError, add_commands
from auditlog_client.verify import VerificationError

_JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


class UsageError(Exception):
    """A bad option value; the message names the option and what it wants."""


def _print(message: Message) -> None:
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), sort_keys=True))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _details(raw: str) -> dict[str, Any]:
    """--details as a dict the client can send, or UsageError saying why not."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as err:  # JSONDecodeError included
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        raise UsageError(f"--details: got {shown!r} ({reason}), want a JSON object") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
        raise UsageError(f"""--details: got {kind}, want a JSON object, e.g. '{{"ip": "10.0.0.1"}}'""")
    if any(number in (float("inf"), float("-inf")) for number in _numbers(value)):
        raise UsageError("--details: got a number too large for a double, want finite numbers")
    try:
        # Built once here so that what protobuf refuses is reported as this option's fault.
        CreateEventRequest(event=event_input(event_type="x", action="x", details=value)).SerializeToString()
    except DecodeError:
        raise UsageError(
            "--details: nested deeper than protobuf allows, want fewer levels of objects and arrays"
        ) from None
    except (ValueError, TypeError, EncodeError) as err:
        raise UsageError(f"--details: cannot be sent ({err}), want valid Unicode text") from None
    return value


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [value] if isinstance(value, float) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auditctl", description="Talk to an auditlog server over gRPC.")
    parser.add_argument("--target", default="localhost:50051", help="host:port of the gRPC server")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="record an event")
    create.add_argument("--event-type", required=True)
    create.add_argument("--action", required=True)
    create.add_argument("--user-id", default="")
    create.add_argument("--risk-level", default="")
    create.add_argument("--request-id", default="")
    create.add_argument("--details", default="{}", help="a JSON object")
    get = commands.add_parser("get", help="show one event")
    get.add_argument("id")
    search = commands.add_parser("search", help="stream matching events, oldest first")
    search.add_argument("--event-type", default="")
    search.add_argument("--user-id", default="")
    search.add_argument("--start-date", default="")
    search.add_argument("--end-date", default="")
    commands.add_parser("verify", help="verify the whole chain")
    commands.add_parser("stats", help="show statistics")
    add_commands(commands)
    args = parser.parse_args(argv)
    try:
        if args.command in OFFLINE:
            print(OFFLINE[args.command](args))
            return 0
        return _run(args)
    except VerificationError as err:
        print(f"auditctl: {args.command}: {err}", file=sys.stderr)
        return INVALID
    except (UsageError, OptionError) as err:
        print(f"auditctl: {err}", file=sys.stderr)
        return 2
    except AuditLogClientError as err:
        print(f"auditctl: {err.code.name}: {err.message}", file=sys.stderr)
        for violation in err.violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) left; the output it wanted was written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    details = _details(args.details) if args.command == "create" else None
    with AuditClient(args.target) as client:
        if args.command == "create":
            _print(
                client.create_event(
                    event_type=args.event_type,
                    action=args.action,
                    user_id=args.user_id,
                    risk_level=args.risk_level,
                    request_id=args.request_id,
                    details=details,
                )
            )
        elif args.command == "get":
            _print(client.get_event(args.id))
        elif args.command == "search":
            filters = {
                "event_type": args.event_type,
                "user_id": args.user_id,
                "start_date": args.start_date,
                "end_date": args.end_date,
            }
            for event in client.search_events(**filters):
                _print(event)
        elif args.command == "verify":
            result = client.verify_chain(verify_all=True)
            _print(result)
            return 0 if result.valid else 3
        elif args.command == "stats":
            _print(client.get_stats())
    return 0


if __name__ == "__main__":
    sys.exit(main())
