"""NDJSON exports for SIEMs: one JSON object per line, nothing else, so a file can be shipped as is.

`ndjson`: the JSON export's event object (every hashed field plus the hashes). `ocsf`: that object as
an OCSF event (auditlog_client.ocsf, mapping in docs/siem.md), the object itself under `unmapped`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from auditlog.domain.event import EventRecord
from auditlog.export.fields import event_object
from auditlog_client.ocsf import to_ocsf

# Line ends to some readers (Python's splitlines, JavaScript) that JSON leaves raw (it escapes those
# below U+0020): escaped, so each record is one line for every reader.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(
        _LINE_BREAKS
    )


class NdjsonExportWriter:
    def __init__(self, path: Path, shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")
        self._shape = shape

    def write(self, record: EventRecord) -> None:
        value = event_object(record)
        self._file.write(_dumps(value if self._shape is None else self._shape(value)) + "\n")

    def finish(self) -> None:
        self._file.close()

    def close(self) -> None:
        self._file.close()


def ocsf_writer(path: Path, origin: str) -> NdjsonExportWriter:
    return NdjsonExportWriter(path, lambda value: to_ocsf(value, origin))
