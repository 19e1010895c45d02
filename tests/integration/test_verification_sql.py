"""The verification read formats timestamps in PostgreSQL exactly as format_timestamp does, and
reads any timestamp Python could not have hashed as a text no leaf hash can match (real PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from auditlog.domain.canonical import format_timestamp
from auditlog.storage.postgres.verification import canonical_timestamp_sql

EDGES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(99, 6, 15, 12, 0, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2000, 2, 29, 23, 59, 59, 500_000, tzinfo=UTC),
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]


def random_moments(count: int) -> list[datetime]:
    rng = random.Random(20261126)
    span = (datetime(9999, 12, 31, tzinfo=UTC) - datetime(1, 1, 1, tzinfo=UTC)).total_seconds()
    moments = []
    for _ in range(count):
        seconds = rng.randrange(int(span))
        moment = datetime(1, 1, 1, tzinfo=UTC) + timedelta(
            seconds=seconds, microseconds=rng.randrange(1_000_000)
        )
        moments.append(moment)
    return moments


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as connection:
        # Not UTC, with a historical offset in seconds: the formatting must not depend on the session.
        connection.execute("SET TimeZone = 'America/St_Johns'")
        yield connection


def formatted(conn: psycopg.Connection[tuple[object, ...]], moments: list[str]) -> list[object]:
    query = f"SELECT {canonical_timestamp_sql('t')} FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n"
    return [row[0] for row in conn.execute(query, (moments,))]


def test_timestamps_are_formatted_as_format_timestamp(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    moments = EDGES + random_moments(20_000)
    # Sent as text with an offset, so PostgreSQL reads the very instant Python holds.
    got = formatted(conn, [moment.isoformat() for moment in moments])
    assert got == [format_timestamp(moment) for moment in moments]


def test_null_stays_null(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = conn.execute(
        f"SELECT {canonical_timestamp_sql('t')} FROM (SELECT NULL::timestamptz AS t) s"
    ).fetchone()
    assert row == (None,)


@pytest.mark.parametrize(
    "value",
    [
        "infinity",
        "-infinity",
        "0001-01-01 00:00:00+00 BC",
        "0001-12-31 23:59:59.999999+00 BC",
        "10000-01-01 00:00:00+00",
    ],
)
def test_a_timestamp_python_cannot_hold_reads_as_no_canonical_timestamp(
    conn: psycopg.Connection[tuple[object, ...]], value: str
) -> None:
    (text,) = formatted(conn, [value])
    assert isinstance(text, str) and text.startswith("out of range: ")
