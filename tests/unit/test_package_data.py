"""What the service reads besides its code ships inside the package (so an installed wheel has it)
and is found with importlib.resources; settings come only from Config."""

from __future__ import annotations

import ast
import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

from auditlog.config import load_config
from auditlog.gateway import DESCRIPTOR_NAME, TEMPLATE_NAME, GatewaySettings, envoy_path, gateway_dir
from auditlog.storage.postgres.migrations import discover, migrations_dir

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "auditlog"


def test_migrations_and_gateway_files_are_package_data_the_wheel_includes() -> None:
    package = files("auditlog")
    found = [entry.name for _, _, entry in discover(migrations_dir())]
    assert found[0] == "0001_audit_log.sql" and len(found) >= 6
    assert (gateway_dir() / TEMPLATE_NAME).is_file() and (gateway_dir() / DESCRIPTOR_NAME).is_file()
    # Inside the package, not beside it in the source tree.
    assert str(gateway_dir()).startswith(str(package)) and str(migrations_dir()).startswith(str(package))
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [
        path.relative_to(PACKAGE).as_posix()
        for path in [*PACKAGE.glob("migrations/*"), *PACKAGE.glob("gateway_files/*")]
    ]
    assert shipped and all(any(fnmatch(name, p) for p in patterns["auditlog"]) for name in shipped)


def test_envoy_binary_override_is_a_setting() -> None:
    config = load_config({"AUDITLOG_ENVOY": "/opt/envoy/bin/envoy"})
    assert config.envoy_path == Path("/opt/envoy/bin/envoy")
    assert GatewaySettings.for_service(config, 50051).envoy == Path("/opt/envoy/bin/envoy")
    assert envoy_path(config.envoy_path) == Path("/opt/envoy/bin/envoy")
    assert load_config({}).envoy_path is None


def test_only_config_reads_the_environment() -> None:
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert all(reader.startswith("config.py:") for reader in readers), readers
