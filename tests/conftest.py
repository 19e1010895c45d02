"""Fixtures live in tests/fix_*.py and load as plugins."""

pytest_plugins = [
    "tests.fix_db",
    "tests.fix_server",
    "tests.fix_s3",
    "tests.fix_export",
    "tests.fix_gateway",
    "tests.fix_serve",
    "tests.fix_canonical",
    "tests.fix_servicers",
    "tests.fix_auth",
    "tests.fix_principal",
    "tests.fix_secrets",
    "tests.fix_cli",
]

from hypothesis import settings  # noqa: E402

# No per-example deadline: a shared or loaded CI machine must not turn a slow example into a failure
# (the examples' results are what the tests check, not their speed).
settings.register_profile("auditlog", deadline=None)
settings.load_profile("auditlog")
