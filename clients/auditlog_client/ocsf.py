"""Audit events as OCSF 1.3.0 events (docs/siem.md has the mapping), and as plain JSON objects.

Works on the export's event object (every field by its schema name, timestamps as RFC 3339 text,
hashes as hex), so the server's exports and auditctl's tail produce the same records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf import json_format

from audit.v1 import event_pb2

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "auditlog", "vendor_name": "auditlog"}
# OCSF severity_id by risk_level; unset is Informational.
SEVERITY = {"": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
# (class_uid, class name, category_uid, category name)
AUTHENTICATION = (3002, "Authentication", 3, "Identity & Access Management")
ACCOUNT_CHANGE = (3001, "Account Change", 3, "Identity & Access Management")
API_ACTIVITY = (6003, "API Activity", 6, "Application Activity")
# event_type prefixes, the first that matches wins; anything else is API Activity.
CLASS_BY_PREFIX = (
    (("user.login", "user.logout", "auth.", "session."), AUTHENTICATION),
    (("user.", "account.", "role.", "group.", "permission."), ACCOUNT_CHANGE),
)
# Words of event_type or action (split at "." and "_") naming each class's activity, first match wins.
ACTIVITIES: dict[int, tuple[tuple[int, str, tuple[str, ...]], ...]] = {
    3002: (
        (2, "Logoff", ("logout", "logoff", "signout")),
        (1, "Logon", ("login", "logon", "signin", "authenticate", "authentication")),
    ),
    3001: (
        (1, "Create", ("create", "created", "add", "register", "signup")),
        (6, "Delete", ("delete", "deleted", "remove", "removed")),
        (3, "Password Change", ("password",)),
        (2, "Enable", ("enable", "enabled", "unlock")),
        (5, "Disable", ("disable", "disabled", "lock", "suspend")),
        (7, "Attach Policy", ("grant", "attach", "assign")),
        (8, "Detach Policy", ("revoke", "detach", "unassign")),
    ),
    6003: (
        (1, "Create", ("create", "created", "add", "upload", "write", "insert")),
        (2, "Read", ("read", "view", "get", "list", "access", "download", "export", "search", "query")),
        (3, "Update", ("update", "updated", "modify", "change", "edit", "patch", "set")),
        (4, "Delete", ("delete", "deleted", "remove", "removed", "purge")),
    ),
}
_FAILURE_WORDS = {"fail", "failed", "failure", "denied", "rejected", "invalid", "error"}
_SUCCESS_WORDS = {"success", "successful", "succeeded", "ok", "allowed"}


def event_object(event: event_pb2.AuditEvent) -> dict[str, Any]:
    """An AuditEvent as the export's event object."""
    occurred = event.occurred_at.ToDatetime() if event.HasField("occurred_at") else None
    return {
        "id": event.id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "user_id": event.user_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "details": json_format.MessageToDict(event.details),
        "risk_level": event.risk_level,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "session_id": event.session_id,
        "request_id": event.request_id,
        "occurred_at": None if occurred is None else _rfc3339(event.occurred_at),
        "recorded_at": _rfc3339(event.recorded_at),
        "leaf_hash": event.leaf_hash,
        "prev_hash": event.prev_hash,
        "chain_hash": event.chain_hash,
    }


def _rfc3339(stamp: Any) -> str:
    return str(stamp.ToDatetime().isoformat(timespec="microseconds")) + "Z"


def _millis(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _words(*texts: str) -> set[str]:
    return {w for text in texts for w in text.lower().replace("_", ".").replace("-", ".").split(".") if w}


def ocsf_class(event_type: str) -> tuple[int, str, int, str]:
    for prefixes, chosen in CLASS_BY_PREFIX:
        if event_type.startswith(prefixes):
            return chosen
    return API_ACTIVITY


def to_ocsf(event: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """One event object as an OCSF event of the class its event_type maps to. origin names the log
    (its checkpoint origin) so that a SIEM record can be traced to it and proven with chain_hash."""
    class_uid, class_name, category_uid, category_name = ocsf_class(event["event_type"])
    words = _words(event["event_type"], event["action"])
    activity_id, activity_name = 99, "Other"
    for uid, name, names in ACTIVITIES[class_uid]:
        if words & set(names):
            activity_id, activity_name = uid, name
            break
    severity_id = SEVERITY.get(event["risk_level"], 1)
    occurred = event.get("occurred_at")
    recorded = _millis(event["recorded_at"])
    user: dict[str, Any] = {"uid": event["user_id"]} if event["user_id"] else {"name": "unknown"}
    endpoint: dict[str, Any] = {"ip": event["ip_address"]} if event["ip_address"] else {"name": "unknown"}
    record: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES[severity_id],
        "time": _millis(occurred) if occurred else recorded,
        "message": f"{event['event_type']} {event['action']}",
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": event["id"],
            "sequence": event["sequence"],
            "log_name": origin,
            "log_provider": "auditlog",
            "event_code": event["event_type"],
            "logged_time": recorded,
            **({"correlation_uid": event["request_id"]} if event["request_id"] else {}),
        },
        "src_endpoint": endpoint,
        # What OCSF has no place for, and what proves the record: recompute leaf_hash from the event
        # object (docs/integrity.md), then chain_hash, and check it against the log's head at origin.
        "unmapped": {
            "auditlog": {
                "origin": origin,
                "sequence": event["sequence"],
                "leaf_hash": event["leaf_hash"],
                "prev_hash": event["prev_hash"],
                "chain_hash": event["chain_hash"],
                "event": dict(event),
            }
        },
    }
    status = 1 if words & _SUCCESS_WORDS else 2 if words & _FAILURE_WORDS else 0
    if status:
        record["status_id"] = status
        record["status"] = "Success" if status == 1 else "Failure"
    if event["user_agent"]:
        record["http_request"] = {"user_agent": event["user_agent"]}
    if class_uid == API_ACTIVITY[0]:
        record["actor"] = {"user": user} if event["user_id"] else {"app_name": "unknown"}
        record["api"] = {"operation": event["action"]}
        if event["resource_type"] or event["resource_id"]:
            record["resources"] = [
                {"type": event["resource_type"] or "unknown", "uid": event["resource_id"] or "unknown"}
            ]
        if event["session_id"]:
            record["actor"]["session"] = {"uid": event["session_id"]}
    else:
        record["user"] = user
    if class_uid == AUTHENTICATION[0]:
        # What the user authenticates to: OCSF requires a service or a destination.
        record["service"] = {"name": event["resource_type"] or "unknown"}
        if event["resource_id"]:
            record["service"]["uid"] = event["resource_id"]
        if event["session_id"]:
            record["session"] = {"uid": event["session_id"]}
    return record
