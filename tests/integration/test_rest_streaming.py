"""The streaming search over REST is not cut by a route timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fix_gateway import ChunkedStream, RestStack, fill, running_stack


@pytest.fixture
def rest_short_timeout(database_url: str, tmp_path: Path) -> Iterator[RestStack]:
    """Unary REST calls time out after 1 s here; streams must not."""
    with running_stack(database_url, tmp_path, unary_timeout_seconds=1) as stack:
        yield stack


def test_slow_stream_outlives_the_unary_route_timeout(rest_short_timeout: RestStack) -> None:
    total = 1_200
    fill(rest_short_timeout, total, pad=6_000)  # ~7 MB: more than the buffers between reader and server
    stream = ChunkedStream(rest_short_timeout.port, "/api/v1/audit/search", receive_buffer=65536)
    started = time.monotonic()
    body = b""
    try:
        for index, chunk in enumerate(stream.chunks()):
            body += chunk
            if index == 0:
                time.sleep(2.0)  # a reader that stalls: the stream lasts well past 1 s
    finally:
        stream.close()
    assert time.monotonic() - started > 1.5
    assert stream.complete
    assert stream.trailers["grpc-status"] == "0"
    messages = json.loads(body)
    assert len(messages) > 1
    assert sum(len(message["events"]) for message in messages) == total
