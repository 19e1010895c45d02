-- Live tails (TailEvents) wake on this instead of polling: every committed move of the head tells
-- each server process's listener the new head sequence. NOTIFY is delivered at commit, in commit
-- order, and never for a rolled-back batch.
CREATE FUNCTION auditlog_notify_head() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auditlog_head', NEW.sequence::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER log_head_notify
AFTER UPDATE OF sequence ON log_head
FOR EACH ROW WHEN (NEW.sequence IS DISTINCT FROM OLD.sequence)
EXECUTE FUNCTION auditlog_notify_head();

-- The SIEM export formats that come with live tails (issue 18): NDJSON and OCSF.
ALTER TABLE export_jobs DROP CONSTRAINT export_jobs_export_format_check;
ALTER TABLE export_jobs ADD CONSTRAINT export_jobs_export_format_check
    CHECK (export_format IN ('csv', 'json', 'xlsx', 'ndjson', 'ocsf'));
