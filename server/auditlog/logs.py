"""Log lines as one JSON object each (`AUDITLOG_LOG_FORMAT=json`), for log collectors.

Fields: `time` (UTC, RFC 3339), `level`, `logger`, `message`, `process` (`worker-N` in a worker
process), `request_id` when the line was logged while serving a call (the caller's `x-request-id`,
or the id the call's error answer carries), and `exception` (the traceback, server side only).
Registered secrets are redacted from every text, as in text logs (auditlog.redaction).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from auditlog.api.status import current_request_id
from auditlog.redaction import redact


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if self._process is not None:
            entry["process"] = self._process
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def use_json(process: str | None = None) -> None:
    """Every handler of the root logger writes JSON lines from now on."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter(process))
