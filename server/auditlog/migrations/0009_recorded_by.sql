-- Who wrote each event (the authenticated principal, '' with auth off) and which canonical form
-- (docs/integrity.md) its leaf hash covers. Rows written before stay version 1 (no recorded_by in
-- their hash); the service writes version 2. Adding columns with constant defaults rewrites no row,
-- so the WORM triggers are untouched.
ALTER TABLE audit_events
    ADD COLUMN recorded_by       text     NOT NULL DEFAULT '',
    ADD COLUMN canonical_version smallint NOT NULL DEFAULT 1 CHECK (canonical_version IN (1, 2));
