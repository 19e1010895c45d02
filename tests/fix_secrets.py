"""No secret the suite makes appears in a log it writes (plugin: tests/conftest.py).

Collected: every API key minted in this process (`api_keys.new_secret` is wrapped for the whole
run: `create_key`, the key fixtures, KeyService, the first admin key), the keys `auditlog serve`
children wrote to a data directory (`admin-api-key`), the embedded runtime logins' passwords
(`service-login.json`), the password of `test_login` and of `admin_url`, and the moto fixture's AWS
secret key (not its access key id: every presigned URL carries that by design). Scanned: the captured log and stderr of every test phase (not stdout: `auditlog keys create`
prints a new key there on purpose) and, at the end, every `*.log` file under pytest's base
temporary directory (Envoy's and `auditlog serve`'s output). A secret found is an error at the
teardown of the run's last test, naming where it was seen, never the secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditlog.access import ADMIN_KEY_FILE
from auditlog.storage.postgres import api_keys
from auditlog.storage.postgres.logins import CREDENTIALS_FILE
from tests.fix_s3 import SECRET_KEY

# What api_keys.new_secret makes: its prefix and 256 bits in lowercase base32.
KEY = re.compile(re.escape(api_keys.KEY_PREFIX) + r"[a-z2-7]{52}")
# Captured output that may carry a secret on purpose.
_SKIPPED_SECTIONS = ("Captured stdout",)


@dataclass
class Ledger:
    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, captured text)

    def add(self, secret: object) -> None:
        if isinstance(secret, str) and len(secret) >= 8:
            self.secrets.add(secret)

    def wrap(self, make: Callable[[], str]) -> Callable[[], str]:
        def minted() -> str:
            secret = make()
            self.add(secret)
            return secret

        return minted

    def collect_files(self, root: Path) -> None:
        """The secrets that child processes left in data directories under root."""
        for path in root.rglob(ADMIN_KEY_FILE):
            self.add(path.read_text(errors="replace").strip())
        for path in root.rglob(CREDENTIALS_FILE):
            try:
                self.add(json.loads(path.read_text()).get("password"))
            except (ValueError, AttributeError):
                continue

    def leaks(self, root: Path) -> list[str]:
        """Where a secret appears: a test's captured section or a log file under root."""
        found = [where for where, text in self.texts if self._seen(text)]
        for path in sorted(root.rglob("*.log")):
            if path.is_file() and self._seen(path.read_text(errors="replace")):
                found.append(str(path))
        return found

    def _seen(self, text: str) -> bool:
        if any(token in self.secrets for token in KEY.findall(text)):
            return True
        return any(secret in text for secret in self.secrets if not KEY.fullmatch(secret))


_LEDGER = pytest.StashKey[Ledger]()


def ledger_of(config: pytest.Config) -> Ledger:
    return config.stash[_LEDGER]


def pytest_configure(config: pytest.Config) -> None:
    ledger = Ledger()
    ledger.add(SECRET_KEY)
    config.stash[_LEDGER] = ledger
    patch = pytest.MonkeyPatch()
    patch.setattr(api_keys, "new_secret", ledger.wrap(api_keys.new_secret))
    config.add_cleanup(patch.undo)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    value = yield
    if fixturedef.argname == "test_login":
        ledger_of(request.config).add(value)
    elif fixturedef.argname == "admin_url":
        ledger_of(request.config).add(psycopg.conninfo.conninfo_to_dict(value).get("password"))
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    ledger = ledger_of(item.config)
    # A report repeats the earlier phases' sections: each is kept once, from its own phase.
    for title, text in report.sections:
        if text and title.endswith(f" {report.when}") and not title.startswith(_SKIPPED_SECTIONS):
            ledger.texts.append((f"{title} of {report.nodeid}", text))
    return report


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_logs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Set up first, torn down last: after every server and Envoy has stopped and flushed its log."""
    yield
    ledger = ledger_of(request.config)
    root = tmp_path_factory.getbasetemp()
    ledger.collect_files(root)
    leaks = ledger.leaks(root)
    assert not leaks, "a secret (API key, database password or AWS key) appears in: " + "; ".join(leaks)
