-- The signed manifest of each completed export (issue 16, point 5): a C2SP signed note naming the
-- file's SHA-256, size, rows, filters and the checkpoint it was made against. '' for older jobs.
ALTER TABLE export_jobs ADD COLUMN manifest text NOT NULL DEFAULT '';
