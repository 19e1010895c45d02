-- The audit log: an append-only (WORM) events table, the log head the sequencer locks, and the
-- record of verifications. Runs as the owner role; the service runs as auditlog_service.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditlog_service') THEN
        CREATE ROLE auditlog_service NOLOGIN;
    END IF;
    -- The owner connects and then SET ROLEs to auditlog_service; a non-superuser owner needs
    -- membership for that (a superuser has it implicitly).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT auditlog_service TO %I', current_user);
    END IF;
END
$$;

CREATE TABLE audit_events (
    sequence      bigint      PRIMARY KEY CHECK (sequence >= 0),
    id            uuid        NOT NULL UNIQUE,
    event_type    text        NOT NULL,
    user_id       text        NOT NULL,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text        NOT NULL,
    details       jsonb       NOT NULL,
    risk_level    text        NOT NULL,
    ip_address    text        NOT NULL,
    user_agent    text        NOT NULL,
    session_id    text        NOT NULL,
    request_id    text        NOT NULL,
    occurred_at   timestamptz,
    recorded_at   timestamptz NOT NULL,
    leaf_hash     bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
    prev_hash     bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    chain_hash    bytea       NOT NULL CHECK (octet_length(chain_hash) = 32)
);

-- Idempotency: one event per client request_id.
CREATE UNIQUE INDEX audit_events_request_id ON audit_events (request_id) WHERE request_id <> '';
-- Filters, each ending in sequence so keyset pages read the index in order.
CREATE INDEX audit_events_event_type ON audit_events (event_type, sequence);
CREATE INDEX audit_events_user_id ON audit_events (user_id, sequence);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id, sequence);
CREATE INDEX audit_events_risk_level ON audit_events (risk_level, sequence);
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at, sequence);

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is write-once (WORM): % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit events can only be appended';
END
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- The head of the log, one row; the sequencer locks it (SELECT ... FOR UPDATE) so that appends
-- from any number of server processes are serialised into one chain.
CREATE TABLE log_head (
    id          integer     PRIMARY KEY CHECK (id = 1),
    sequence    bigint      NOT NULL CHECK (sequence >= -1),
    chain_hash  bytea       NOT NULL CHECK (octet_length(chain_hash) = 32),
    recorded_at timestamptz
);
INSERT INTO log_head (id, sequence, chain_hash, recorded_at) VALUES (1, -1, '\x0000000000000000000000000000000000000000000000000000000000000000', NULL);

CREATE TABLE verifications (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    verified_at        timestamptz NOT NULL,
    verify_all         boolean     NOT NULL,
    valid              boolean     NOT NULL,
    events_checked     bigint      NOT NULL,
    start_sequence     bigint,
    end_sequence       bigint,
    first_bad_sequence bigint,
    break_kind         text        NOT NULL,
    message            text        NOT NULL
);

REVOKE ALL ON audit_events, log_head, verifications FROM PUBLIC;
GRANT SELECT, INSERT ON audit_events TO auditlog_service;
GRANT SELECT, UPDATE ON log_head TO auditlog_service;
GRANT SELECT, INSERT ON verifications TO auditlog_service;
