"""The result table: one row per figure, its limit or target beside it, met or missed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    measurement: str
    result: str
    compared_with: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rate(value: float, unit: str = "ev/s") -> str:
    return f"{value:,.0f} {unit}"


def render(rows: list[Row]) -> str:
    header = ("Measurement", "Result", "Compared with (same run)", "Ratio", "Target", "Met")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        cells = (row.measurement, row.result, row.compared_with, row.ratio, row.target, met)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
