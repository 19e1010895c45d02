-- The distinct users of each hour (UTC), written by the sequencer in the same transaction as the
-- events. GetStats counts the users of the last 24 hours from these hourly sets plus the events of
-- the one partial hour at the window's start, instead of reading every event of the day.
CREATE TABLE user_hours (
    hour    timestamptz NOT NULL,
    user_id text        NOT NULL,
    PRIMARY KEY (hour, user_id)
);
INSERT INTO user_hours (hour, user_id)
SELECT DISTINCT date_trunc('hour', recorded_at, 'UTC'), user_id FROM audit_events WHERE user_id <> '';

REVOKE ALL ON user_hours FROM PUBLIC;
GRANT SELECT, INSERT ON user_hours TO auditlog_service;
