"""PostgreSQL storage: connection set-up, migrations, and the named queries of the log."""
