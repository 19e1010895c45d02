-- The verifiable log (docs/architecture.md, "The Merkle tree in storage"): the RFC 9162 tree over
-- the events' leaf hashes, kept as C2SP tlog-tiles hash tiles, and the signed checkpoints. Both are
-- insert-only like audit_events: the service role may INSERT and SELECT, triggers refuse the rest.

-- Full tiles only (256 hashes of one tile level, 8,192 bytes), each written once by the integrator.
-- root is the tile's Merkle root, itself one hash of the tile a level up: a partial tile of level
-- L >= 1 is read as the roots of at most 255 full tiles of level L - 1, and a partial tile of level
-- 0 as at most 255 leaf hashes of audit_events.
CREATE TABLE merkle_tiles (
    level  smallint NOT NULL CHECK (level >= 0),
    index  bigint   NOT NULL CHECK (index >= 0),
    hashes bytea    NOT NULL CHECK (octet_length(hashes) = 8192),
    root   bytea    NOT NULL CHECK (octet_length(root) = 32),
    PRIMARY KEY (level, index)
);
-- Hashes do not compress: stored out of line uncompressed, so reading roots never touches them.
ALTER TABLE merkle_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- One signed checkpoint (a C2SP signed note of a tlog-checkpoint body) per tree size.
CREATE TABLE checkpoints (
    tree_size bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root      bytea       NOT NULL CHECK (octet_length(root) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL
);

CREATE FUNCTION verifiable_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is write-once (WORM): % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the Merkle tree and checkpoints can only be appended';
END
$$;

CREATE TRIGGER merkle_tiles_no_update BEFORE UPDATE ON merkle_tiles
    FOR EACH ROW EXECUTE FUNCTION verifiable_log_refuse_change();
CREATE TRIGGER merkle_tiles_no_delete BEFORE DELETE ON merkle_tiles
    FOR EACH ROW EXECUTE FUNCTION verifiable_log_refuse_change();
CREATE TRIGGER merkle_tiles_no_truncate BEFORE TRUNCATE ON merkle_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION verifiable_log_refuse_change();
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION verifiable_log_refuse_change();
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION verifiable_log_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION verifiable_log_refuse_change();

REVOKE ALL ON merkle_tiles, checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON merkle_tiles, checkpoints TO auditlog_service;
