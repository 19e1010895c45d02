"""Server reflection on the gRPC port, v1 and v1alpha: tools like grpcurl discover every service
without protos."""

from __future__ import annotations

import grpc
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
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


def _ask_v1(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # The v1 messages are the v1alpha ones under another package: the same bytes on the wire.
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (response,) = call(iter([request]), timeout=10)
    return response


def test_reflection_v1_lists_and_describes_every_service(channel: grpc.Channel) -> None:
    listed = _ask_v1(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    services = {service.name for service in listed.list_services_response.service}
    assert {
        "audit.v1.AuditService",
        "audit.v1.ExportService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    for symbol, package in (
        ("audit.v1.AuditService", "audit.v1"),
        ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1"),
    ):
        answer = _ask_v1(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        assert not answer.HasField("error_response"), answer.error_response
        files = [
            FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]
        assert any(
            f.package == package and symbol.rsplit(".", 1)[1] in {s.name for s in f.service} for f in files
        )
