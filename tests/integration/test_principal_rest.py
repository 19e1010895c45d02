"""Through Envoy: a principal past its rate gets 429, an unsigned download without the auditor role
403, both with the usual JSON error body."""

from __future__ import annotations

from collections.abc import Callable

from tests.fix_gateway import RestStack
from tests.fix_principal import HEADER

EVENT = {"event_type": "user.login", "action": "login"}


def test_a_principal_past_its_rate_gets_429_while_another_is_answered(
    principal_rest: Callable[..., RestStack],
) -> None:
    rest = principal_rest(principal_rate=3)
    statuses = [
        rest.post_json("/api/v1/audit", EVENT, {HEADER: "writer key:noisy"}).status for _ in range(10)
    ]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    refused = rest.post_json("/api/v1/audit", EVENT, {HEADER: "writer key:noisy"})
    assert refused.status == 429
    assert refused.json()["message"] == (
        "too many calls from key:noisy: got more than 3 a second, want at most 3; retry later"
    )
    assert rest.post_json("/api/v1/audit", EVENT, {HEADER: "writer key:quiet"}).status == 200


def test_an_unsigned_download_without_the_auditor_role_gets_403(
    principal_rest: Callable[..., RestStack],
) -> None:
    rest = principal_rest()
    assert rest.post_json("/api/v1/audit", EVENT).status == 200
    job = rest.post_json("/api/v1/export", {"job_name": "j", "export_format": "csv"}).json()
    path = f"/api/v1/export/{job['id']}/content"
    reply = rest.get(path, {HEADER: "reader key:r"})
    assert reply.status == 403
    assert reply.json()["message"] == (
        "downloading an export needs the auditor role or a signed URL from GetExportDownload;"
        " key:r has the reader role"
    )
