-- API keys (auditlog.api.auth): only the SHA-256 digest of each key is kept, so a reader of this
-- table learns no usable key. Rows are never deleted: a revoked key stays listed with its dates.
CREATE TABLE api_keys (
    name         text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    digest       bytea       NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    role         text        NOT NULL CHECK (role IN ('writer', 'reader', 'auditor', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- A revocation is final: the service may set revoked_at once, never clear or move it.
CREATE FUNCTION api_keys_revocation_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'api key % is revoked; a revocation cannot be undone', OLD.name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER api_keys_revocation_final BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_revocation_final();

-- The service reads keys, adds them (admin RPC), and updates only the two dates: never a digest,
-- a role or a name, and never deletes.
REVOKE ALL ON api_keys FROM PUBLIC;
GRANT SELECT, INSERT ON api_keys TO auditlog_service;
GRANT UPDATE (last_used_at, revoked_at) ON api_keys TO auditlog_service;
