"""Hostile clients, seeded and small: no request answers INTERNAL or HTTP 5xx, no answer leaks
internals, and the server is up with its chain intact afterwards. The full-size runs are
`python -m bench.fuzz` (10,000 gRPC and 2,000 REST requests)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fuzz import chain_is_intact, run_grpc, run_rest
from tests.fix_gateway import RestStack


def test_fuzzed_grpc_requests_never_answer_internal_or_leak(rest: RestStack) -> None:
    target = f"127.0.0.1:{rest.service.port}"
    tally = run_grpc(target, 600, seed=13)
    assert tally.failures == [], tally.summary("gRPC")
    assert tally.leaks == [], tally.summary("gRPC")
    # The run did reach the server's logic, not only its decoder.
    assert tally.counts["OK"] > 50 and tally.counts["INVALID_ARGUMENT"] > 50, tally.summary("gRPC")


def test_fuzzed_rest_requests_never_answer_5xx_or_leak(rest: RestStack) -> None:
    tally = run_rest(rest.port, 300, seed=13)
    assert tally.failures == [], tally.summary("REST")
    assert tally.leaks == [], tally.summary("REST")
    assert tally.counts["200"] > 20 and tally.counts["400"] > 50, tally.summary("REST")


def test_after_fuzzing_the_server_is_serving_and_its_chain_intact(rest: RestStack) -> None:
    run_grpc(f"127.0.0.1:{rest.service.port}", 200, seed=14)
    run_rest(rest.port, 100, seed=14)
    valid, message = chain_is_intact(f"127.0.0.1:{rest.service.port}")
    assert valid, message
    with grpc.insecure_channel(rest.grpc_target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert rest.get("/health/ready").status == 200
