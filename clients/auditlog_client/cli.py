"""auditctl: a command line over AuditClient: tables on a terminal, JSON lines for programs (--json, or
when stdout is not a terminal); errors are one line on stderr."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError, EncodeError

from audit.v1 import export_service_pb2
from audit.v1.audit_service_pb2 import CreateEventRequest
from auditlog_client.client import AuditClient, event_input
from auditlog_client.errors import AuditLogClientError
from auditlog_client.ocsf import event_object, to_ocsf
from auditlog_client.offline import INVALID, OFFLINE, OptionError, add_commands
from auditlog_client.output import (
    EVENT_COLUMNS,
    EXPORT_COLUMNS,
    Progress,
    StreamTable,
    as_dict,
    print_json,
    print_record,
    print_table,
)
from auditlog_client.verify import VerificationError

_JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


class UsageError(Exception):
    """A bad option value; the message names the option and what it wants."""


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


_FILTERS = (
    "event_type",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "risk_level",
    "start_date",
    "end_date",
)


def _add_filters(parser: argparse.ArgumentParser, names: tuple[str, ...] = _FILTERS) -> None:
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default="")


def _filters(args: argparse.Namespace) -> dict[str, str]:
    return {name: getattr(args, name) for name in _FILTERS if getattr(args, name, "")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditctl",
        description="Talk to an auditlog server over gRPC. Tables on a terminal, JSON lines otherwise.",
    )
    parser.add_argument("--target", default="localhost:50051", help="host:port of the gRPC server")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("AUDITLOG_API_KEY") or None,
        help="API key for servers with auth required (default: $AUDITLOG_API_KEY)",
    )
    parser.add_argument("--ca-file", help="connect with TLS, trusting this CA's PEM certificate")
    parser.add_argument("--json", action="store_true", help="JSON (one object per line) even on a terminal")
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
    _add_filters(search, ("event_type", "user_id", "start_date", "end_date"))
    commands.add_parser("verify", help="verify the whole chain")
    commands.add_parser("stats", help="show statistics")
    checkpoint = commands.add_parser(
        "checkpoint", help="fetch the latest checkpoint; with --state, only if it extends the stored one"
    )
    checkpoint.add_argument("--key", required=True, help="the log's verifier key <name>+<hex>+<base64>")
    checkpoint.add_argument("--state", help="file keeping the last checkpoint accepted (made if missing)")
    add_commands(commands)
    tail = commands.add_parser("tail", help="the newest events; --follow keeps printing new ones")
    tail.add_argument(
        "--format",
        choices=("table", "json", "ndjson", "ocsf"),
        default=None,
        help="default: table on a terminal, json otherwise",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing events as they are recorded")
    tail.add_argument("-n", "--lines", type=int, default=10, help="start this many sequences before the head")
    tail.add_argument("--from-sequence", type=int, default=None, help="start at this sequence instead")
    tail.add_argument("--origin", default="", help="the log's name in OCSF records (default: --target)")
    _add_filters(tail)
    export = commands.add_parser("export", help="export jobs").add_subparsers(
        dest="export_command", required=True
    )
    export_create = export.add_parser("create", help="start an export job")
    export_create.add_argument("--name", required=True, help="job name")
    export_create.add_argument("--format", required=True, help="csv, json, xlsx, ndjson or ocsf")
    export_create.add_argument("--requested-by", default="")
    export_create.add_argument("--wait", action="store_true", help="wait until the job ends")
    _add_filters(export_create)
    export_list = export.add_parser("list", help="the newest export jobs")
    export_list.add_argument("--page-size", type=int, default=50)
    export.add_parser("get", help="one export job").add_argument("id")
    download = export.add_parser("download", help="wait for a job, then save its file")
    download.add_argument("id")
    download.add_argument(
        "-o", "--output", default="", help="file to write ('-': stdout; default: the job's file name)"
    )
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        fields = "; ".join(f"{v.field}: {v.description}" for v in err.violations)
        shown = f"{err.message} ({fields})" if fields else err.message
        print(_one_line(f"auditctl: {err.code.name}: {shown}"), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) left; the output it wanted was written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError) as err:
        print(_one_line(f"auditctl: {err}"), file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        print(_one_line(f"auditctl: unexpected {type(err).__name__}: {err}"), file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    details = _details(args.details) if args.command == "create" else None
    roots = Path(args.ca_file).read_bytes() if args.ca_file else None
    human = not args.json and sys.stdout.isatty()
    show = print_record if human else print_json
    if args.command == "checkpoint":
        return _checkpoint(args, roots)
    with AuditClient(args.target, api_key=args.api_key, root_certificates=roots) as client:
        if args.command == "create":
            show(
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
            show(client.get_event(args.id))
        elif args.command == "search":
            table = StreamTable(EVENT_COLUMNS)
            for event in client.search_events(**_filters(args)):
                table.row(as_dict(event)) if human else print_json(event)
        elif args.command == "verify":
            result = client.verify_chain(verify_all=True)
            show(result)
            return 0 if result.valid else 3
        elif args.command == "stats":
            show(client.get_stats())
        elif args.command == "tail":
            _tail(client, args, human)
        elif args.command == "export":
            return _export(client, args, human)
    return 0


def _checkpoint(args: argparse.Namespace, roots: bytes | None) -> int:
    try:
        client = AuditClient(
            args.target,
            api_key=args.api_key,
            root_certificates=roots,
            verifier_key=args.key,
            checkpoint_state=args.state,
        )
    except VerificationError as err:
        raise UsageError(f"--key: {err}") from None
    with client:
        state = client.checkpoint_state
        before = None if state is None else state.current
        checkpoint = client.checkpoint()
    root = base64.b64encode(checkpoint.root).decode("ascii")
    line = f"checkpoint valid: {checkpoint.origin} size {checkpoint.size} root {root}"
    if before is not None:
        line += f", consistent with size {before.size}"
    elif state is not None:
        line += f", the first kept in {args.state}"
    print(line)
    return 0


def _tail(client: AuditClient, args: argparse.Namespace, human: bool) -> None:
    if args.from_sequence is not None and args.from_sequence < 0:
        raise UsageError(f"--from-sequence: got {args.from_sequence}, want 0 or more")
    if args.lines < 0:
        raise UsageError(f"--lines: got {args.lines}, want 0 or more")
    start = args.from_sequence
    if start is None:
        start = max(0, client.head_sequence() + 1 - args.lines)
    output = args.format or ("table" if human else "json")
    origin = args.origin or args.target
    table = StreamTable(EVENT_COLUMNS)
    for event in client.tail_events(from_sequence=start, follow=args.follow, filters=_filters(args)):
        if output == "table":
            table.row(as_dict(event))
        elif output == "json":
            print_json(event)
        elif output == "ndjson":
            print_json(event_object(event))
        else:
            print_json(to_ocsf(event_object(event), origin))


def _export(client: AuditClient, args: argparse.Namespace, human: bool) -> int:
    command = args.export_command
    if command == "list":
        jobs = client.list_exports(page_size=args.page_size).exports
        if human:
            print_table([as_dict(job) for job in jobs], EXPORT_COLUMNS)
        else:
            for job in jobs:
                print_json(job)
        return 0
    if command == "create":
        job = client.create_export(
            job_name=args.name, export_format=args.format, requested_by=args.requested_by, **_filters(args)
        )
        if args.wait:
            job = _wait(client, job.id)
    elif command == "get":
        job = client.get_export(args.id)
    else:
        job = _wait(client, args.id)
        if job.status == "completed":
            _download(client, job, args.output)
            if args.output == "-":
                return 0  # stdout holds the file alone
    (print_record if human else print_json)(job)
    return 1 if job.status == "failed" else 0


def _wait(client: AuditClient, job_id: str) -> export_service_pb2.ExportJob:
    """The job once it ends, with a bar of its rows on a terminal."""
    bar = Progress(f"export {job_id[:8]}")
    try:
        return client.wait_export(
            job_id, on_progress=lambda job: bar.update(job.rows_written, job.rows_expected, " rows")
        )
    finally:
        bar.done()


def _download(client: AuditClient, job: export_service_pb2.ExportJob, output: str) -> None:
    bar = Progress(f"download {job.file_name}")
    target = output or job.file_name
    done = 0
    out = sys.stdout.buffer if target == "-" else Path(target).open("wb")  # noqa: SIM115 - closed below
    try:
        for chunk in client.download_export(job.id):
            out.write(chunk)
            done += len(chunk)
            bar.update(done, job.file_size, " bytes")
        out.flush()
    finally:
        bar.done()
        if out is not sys.stdout.buffer:
            out.close()
    if target != "-":
        print(f"saved {target} ({done} bytes)", file=sys.stderr)
        # Beside the file, where `auditctl verify-export` looks for it.
        manifest = client.get_export_download(job.id).manifest
        if manifest:
            Path(target + ".manifest").write_text(manifest, encoding="utf-8")
            print(f"saved {target}.manifest", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
