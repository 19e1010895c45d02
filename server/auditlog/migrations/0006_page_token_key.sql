-- The key of the HMAC that makes page tokens tamper-evident (auditlog.domain.page_token): made once
-- here, so every server process on this database signs and checks tokens with the same key and a
-- token from one works on any other.
CREATE TABLE page_token_key (
    id     smallint PRIMARY KEY CHECK (id = 1),
    secret bytea    NOT NULL CHECK (length(secret) = 32)
);
-- gen_random_uuid() draws from PostgreSQL's strong random source: two give 244 random bits.
INSERT INTO page_token_key (id, secret)
VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

REVOKE ALL ON page_token_key FROM PUBLIC;
GRANT SELECT ON page_token_key TO auditlog_service;
