"""Audited reads and per-principal limits from the environment."""

from __future__ import annotations

import pytest

from auditlog.config import load_config
from auditlog.errors import ConfigError


def test_defaults() -> None:
    config = load_config({})
    assert config.audit_reads is True
    assert (config.principal_max_streams, config.principal_max_exports, config.principal_rate) == (3, 5, 500)


def test_settings_are_read_and_checked() -> None:
    config = load_config(
        {
            "AUDITLOG_AUDIT_READS": "OFF",
            "AUDITLOG_PRINCIPAL_MAX_STREAMS": "2",
            "AUDITLOG_PRINCIPAL_MAX_EXPORTS": "7",
            "AUDITLOG_PRINCIPAL_RATE": "50",
        }
    )
    assert config.audit_reads is False
    assert (config.principal_max_streams, config.principal_max_exports, config.principal_rate) == (2, 7, 50)
    assert load_config({"AUDITLOG_AUDIT_READS": "on"}).audit_reads is True
    with pytest.raises(ConfigError, match=r"^AUDITLOG_AUDIT_READS: got 'yes', want on or off$"):
        load_config({"AUDITLOG_AUDIT_READS": "yes"})
    with pytest.raises(
        ConfigError, match=r"^AUDITLOG_PRINCIPAL_RATE: got '0', want a whole number from 1 to"
    ):
        load_config({"AUDITLOG_PRINCIPAL_RATE": "0"})
