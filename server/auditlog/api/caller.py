"""What the service records about the caller of the current call (see api.principal)."""

from __future__ import annotations

from auditlog.api.principal import current_principal


def principal_name() -> str:
    """The name of the current call's principal, "" when auth is off (what recorded_by holds)."""
    principal = current_principal()
    return "" if principal is None else principal.name
