-- GetStats in constant time however long the log: the count of high-risk events is kept on the
-- head row, which the sequencer locks and moves in the same transaction as every append (so the
-- count can never disagree with a committed head). Events written around the sequencer (by the
-- owner, directly) are not counted.
ALTER TABLE log_head ADD COLUMN high_risk_events bigint NOT NULL DEFAULT 0 CHECK (high_risk_events >= 0);
UPDATE log_head
   SET high_risk_events = (SELECT count(*) FROM audit_events WHERE risk_level IN ('high', 'critical'))
 WHERE id = 1;
