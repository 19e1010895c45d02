"""Server reflection on the gRPC port: tools like grpcurl discover every service without protos."""

from __future__ import annotations

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def test_reflection_lists_and_describes_every_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {
        "audit.v1.AuditService",
        "audit.v1.ExportService",
        "audit.v1.HealthService",
        "audit.v1.LogService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    pool = DescriptorPool(database)
    create = pool.FindServiceByName("audit.v1.AuditService").methods_by_name["CreateEvent"]
    assert create.input_type.full_name == "audit.v1.CreateEventRequest"
    assert pool.FindMessageTypeByName("audit.v1.AuditEvent").fields_by_name["chain_hash"] is not None
