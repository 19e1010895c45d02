"""An asyncio (grpc.aio) server for CreateEvent and the no-op, measured by `bench.run --only create
--server-model aio` beside the product's threaded server. Not product code.

It answers the question the earlier sessions left open (bench/RESULTS.md): would an asyncio server,
where a batch's commit resolves its callers' futures on one event loop instead of waking one thread
per caller, bring CreateEvent nearer the no-op? It serves only `/audit.v1.AuditService/CreateEvent`
(the product's conversion, the product's Sequencer and database, the answer built as the threaded
servicer builds it; not its error mapping) and `/bench.Echo/CreateEvent` (the same no-op as
bench/echo.py). Same protocol as bench/server_process.py: prints `PORT <n>`, stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from grpc import aio

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import event_pb2
from auditlog.api.convert import event_and_details_from_proto, event_to_proto
from auditlog.config import Config
from auditlog.sequencer import Sequencer
from auditlog.storage.database import create_pool
from auditlog.storage.events import EventStore
from auditlog.storage.migrations import apply_migrations
from auditlog.tuning import settle_server_process
from bench.echo import create_event_method, sample_response


async def serve(config: Config, database_url: str) -> None:
    apply_migrations(database_url)
    pool = create_pool(database_url, max_size=16, timeout=5)
    sequencer = Sequencer(EventStore(pool).writer())
    sequencer.start()
    echo = sample_response()

    async def create_event(request: pb.CreateEventRequest, context: Any) -> event_pb2.AuditEvent:
        event, sent = event_and_details_from_proto(request.event)
        (record,) = await asyncio.wrap_future(sequencer.submit([event]))
        return event_to_proto(record, sent if record.details is event.details else None)

    async def noop(request: pb.CreateEventRequest, context: Any) -> event_pb2.AuditEvent:
        return echo

    server = aio.server(options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    port = server.add_insecure_port(f"{config.grpc_host}:{config.grpc_port}")
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "audit.v1.AuditService", {"CreateEvent": create_event_method(create_event)}
            ),
            grpc.method_handlers_generic_handler("bench.Echo", {"CreateEvent": create_event_method(noop)}),
        )
    )
    await server.start()
    settle_server_process(config.cpu_affinity, 1)
    print(f"PORT {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(5)
    sequencer.stop()
    pool.close()


def main(config: Config, database_url: str) -> int:
    asyncio.run(serve(config, database_url))
    return 0
