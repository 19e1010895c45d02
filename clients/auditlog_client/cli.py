"""auditctl: a small command line over AuditClient (JSON out, one object per line)."""

from __future__ import annotations

import argparse
import json
import sys

from google.protobuf import json_format
from google.protobuf.message import Message

from auditlog_client.client import AuditClient
from auditlog_client.errors import AuditLogClientError


def _print(message: Message) -> None:
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), sort_keys=True))


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
    args = parser.parse_args(argv)
    try:
        with AuditClient(args.target) as client:
            if args.command == "create":
                _print(
                    client.create_event(
                        event_type=args.event_type,
                        action=args.action,
                        user_id=args.user_id,
                        risk_level=args.risk_level,
                        request_id=args.request_id,
                        details=json.loads(args.details),
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
    except AuditLogClientError as err:
        print(f"auditctl: {err.code.name}: {err.message}", file=sys.stderr)
        for violation in err.violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
