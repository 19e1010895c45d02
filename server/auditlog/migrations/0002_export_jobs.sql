-- Export jobs (DESIGN.md "Storage and WORM": jobs live in their own, mutable table). The table is
-- also the work queue: workers claim the oldest pending job with FOR UPDATE SKIP LOCKED, so any
-- number of server processes on one database share the jobs without running one twice.

CREATE TABLE export_jobs (
    id            uuid        PRIMARY KEY,
    job_name      text        NOT NULL,
    export_format text        NOT NULL CHECK (export_format IN ('csv', 'json', 'xlsx')),
    -- The EventFilter as a JSON object of its set fields (dates as RFC 3339 UTC strings).
    filters       jsonb       NOT NULL,
    requested_by  text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    error         text        NOT NULL DEFAULT '',
    rows_written  bigint      NOT NULL DEFAULT 0,
    rows_expected bigint      NOT NULL DEFAULT 0,
    -- The log head when the job was created (-1: empty log): the job never exports past it.
    max_sequence  bigint      NOT NULL CHECK (max_sequence >= -1),
    file_name     text        NOT NULL,
    file_sha256   text        NOT NULL DEFAULT '',
    file_size     bigint      NOT NULL DEFAULT 0,
    -- Where the finished file is: 'local' (path under the exports folder) or 's3' (s3://bucket/key).
    storage       text        NOT NULL DEFAULT '',
    location      text        NOT NULL DEFAULT '',
    -- Runs started; a job whose runs keep dying with the server is failed after a few.
    attempts      integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    -- Bumped while a worker runs the job; a running job whose heartbeat is older than the lease
    -- belongs to a dead process and goes back to pending.
    heartbeat_at  timestamptz
);

-- ListExports pages newest first on (created_at, id).
CREATE INDEX export_jobs_created ON export_jobs (created_at DESC, id DESC);
-- Workers look only at unfinished jobs.
CREATE INDEX export_jobs_unfinished ON export_jobs (status, created_at) WHERE status IN ('pending', 'running');

REVOKE ALL ON export_jobs FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON export_jobs TO auditlog_service;
