-- Files (PostgreSQL): a cleanup claim on uploads (set while a cleanup run deletes the
-- provider file, so the row is never reused as it is and an interrupted run can be
-- finished), and the `tool` trigger for cleanup runs started by `kimi_manage_files`.

ALTER TABLE provider_file_uploads ADD COLUMN cleanup_claimed_at BIGINT;

CREATE INDEX idx_provider_file_uploads_cleanup
    ON provider_file_uploads (reference_count, deleted_at);

ALTER TABLE cleanup_runs DROP CONSTRAINT cleanup_runs_trigger_check;
ALTER TABLE cleanup_runs ADD CONSTRAINT cleanup_runs_trigger_check
    CHECK (trigger IN ('schedule', 'cli', 'http', 'tool'));
