"""GetStats reads its counts from the head, hourly user sets and index probes; these tests hold
those answers to a direct count over the events, across hour boundaries and the 24-hour edge."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from auditlog.app import Service, create_service
from auditlog_client import AuditClient
from tests.fix_server import server_config, stop_service

NOW = datetime(2024, 3, 10, 12, 20, 7, 123456, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_service(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Service]:
    svc = create_service(server_config(tmp_path), database_url=database_url, clock=clock, health_interval=0.2)
    yield svc
    stop_service(svc, database_url)


def direct_counts(database_url: str, now: datetime) -> tuple[int, int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT user_id) FILTER (WHERE user_id <> ''),"
            " (SELECT count(*) FROM audit_events WHERE risk_level IN ('high', 'critical'))"
            " FROM audit_events WHERE recorded_at >= %s - interval '24 hours'",
            (now,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_stats_match_a_direct_count_across_hours_and_the_24_hour_edge(
    timed_service: Service, clock: Clock, database_url: str
) -> None:
    # (hours before NOW, user, risk): some outside the window, some in its partial first hour,
    # some in whole hours, users recurring across hours.
    plan = [
        (30.0, "old-only", "high"),
        (24.5, "edge-out", "low"),
        (23.99, "edge-in", "critical"),
        (23.7, "alice", "low"),
        (23.0, "alice", "high"),
        (12.0, "bob", ""),
        (12.0, "", "medium"),
        (0.5, "carol", "critical"),
        (0.0, "alice", "low"),
    ]
    with AuditClient(f"127.0.0.1:{timed_service.port}") as client:
        for hours, user, risk in plan:
            clock.now = NOW - timedelta(hours=hours)
            client.create_event(event_type="t.e", action="a", user_id=user, risk_level=risk)
        for at in (
            NOW,
            NOW + timedelta(minutes=40),
            NOW + timedelta(hours=11, minutes=45),
            NOW + timedelta(days=2),
        ):
            clock.now = at
            stats = client.get_stats()
            expected = direct_counts(database_url, at)
            got = (stats.events_last_24h, stats.unique_users_last_24h, stats.high_risk_events)
            assert got == expected, at
