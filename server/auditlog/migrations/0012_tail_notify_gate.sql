-- NOTIFY only while some server process follows the log: a process with live tails holds the
-- shared advisory lock 0x7461696c ("tail") on its LISTEN connection (storage.postgres.head_listener). A
-- commit whose exclusive try succeeds knows nobody holds it, skips the NOTIFY (and the trigger
-- call), and holds the lock only until it commits. A crashed process's lock goes with its
-- connection.
DROP TRIGGER log_head_notify ON log_head;

CREATE TRIGGER log_head_notify
AFTER UPDATE OF sequence ON log_head
FOR EACH ROW WHEN (NEW.sequence IS DISTINCT FROM OLD.sequence AND NOT pg_try_advisory_xact_lock(1952541036))
EXECUTE FUNCTION auditlog_notify_head();
