"""The PostgreSQL implementation of the storage seam (storage.api), and the database's set-up."""
