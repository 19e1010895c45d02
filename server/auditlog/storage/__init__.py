"""Storage: the seam (api.py), its PostgreSQL implementation (postgres/) and an in-memory one (memory.py)."""
