"""What auditctl prints: tables for people, JSON for programs, and a progress bar only on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

EVENT_COLUMNS = ("sequence", "recorded_at", "event_type", "action", "user_id", "risk_level")
EXPORT_COLUMNS = ("id", "status", "export_format", "rows_written", "rows_expected", "job_name", "created_at")
# Widths of streamed tables (rows are printed as they come, so widths cannot follow the data).
_STREAM_WIDTHS = {"sequence": 9, "recorded_at": 27, "event_type": 24, "action": 24, "user_id": 16}


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Message | Mapping[str, Any], out: TextIO | None = None) -> None:
    data = as_dict(value) if isinstance(value, Message) else value
    print(json.dumps(data, sort_keys=True, ensure_ascii=False), file=out or sys.stdout, flush=True)


def _cell(value: Any, width: int | None = None) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def print_record(message: Message, out: TextIO | None = None) -> None:
    """One message as a two-column table of its set fields."""
    data = as_dict(message)
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        print(f"{key:<{width}}  {_cell(value)}", file=out or sys.stdout)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    cells = [[_cell(row.get(c), 40) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    stream = out or sys.stdout
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=stream)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=stream)


class StreamTable:
    """Rows printed as they arrive, under one header, in fixed widths."""

    def __init__(self, columns: Sequence[str], out: TextIO | None = None) -> None:
        self._columns = columns
        self._out = out or sys.stdout
        self._widths = [_STREAM_WIDTHS.get(c, 10) for c in columns]
        self._header = False

    def row(self, values: Mapping[str, Any]) -> None:
        if not self._header:
            self._line([c.upper() for c in self._columns])
            self._header = True
        self._line([_cell(values.get(c), w) for c, w in zip(self._columns, self._widths, strict=True)])

    def _line(self, cells: Sequence[str]) -> None:
        print(
            "  ".join(v.ljust(w) for v, w in zip(cells, self._widths, strict=True)).rstrip(),
            file=self._out,
            flush=True,
        )


class Progress:
    """A one-line bar on stderr, redrawn in place; does nothing when stderr is not a terminal."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self.shown = self._stream.isatty()
        self._label = label
        self._drawn = False

    def update(self, done: int, total: int | None, unit: str = "") -> None:
        if not self.shown:
            return
        if total:
            filled = min(self.WIDTH, self.WIDTH * done // total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            text = f"\r{self._label} [{bar}] {100 * done // total:3d}% {done}/{total}{unit}"
        else:
            text = f"\r{self._label} {done}{unit}"
        self._stream.write(text)
        self._stream.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
