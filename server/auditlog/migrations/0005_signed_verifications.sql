-- Verification results are signed by the verifier (HMAC-SHA256 with a key kept outside the
-- database, see docs/decisions.md), so a row written around it (the service role may INSERT) can
-- be told from a genuine one. NOT VALID: rows from before this migration stay, unsigned; every new
-- row must carry a 32-byte signature, and GetStats reports only rows whose signature checks.
ALTER TABLE verifications ADD COLUMN mac bytea;
ALTER TABLE verifications
    ADD CONSTRAINT verifications_signed CHECK (mac IS NOT NULL AND octet_length(mac) = 32) NOT VALID;
-- GetStats reads the newest whole-log result and the newest failure.
CREATE INDEX verifications_whole ON verifications (verified_at DESC, id DESC) WHERE verify_all;
CREATE INDEX verifications_failed ON verifications (verified_at DESC, id DESC) WHERE NOT valid;
