"""In-process servicers as the server runs them, for grpc_testing (which runs no interceptors)."""

from __future__ import annotations

from typing import Any

from auditlog.api.status import streamed_answer, unary_answer


class Mapped:
    """servicer's methods as the server runs them: behind the error model's wrapping (api.status)."""

    def __init__(self, servicer: Any, service: Any) -> None:
        self._servicer = servicer
        self._service = service

    def __getattr__(self, name: str) -> Any:
        wrap = streamed_answer if self._service.methods_by_name[name].server_streaming else unary_answer
        return wrap(getattr(self._servicer, name), name)
