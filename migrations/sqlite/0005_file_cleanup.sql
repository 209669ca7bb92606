-- Files (SQLite): a cleanup claim on uploads (set while a cleanup run deletes the provider
-- file, so the row is never reused as it is and an interrupted run can be finished), and
-- the `tool` trigger for cleanup runs started by `kimi_manage_files`.

ALTER TABLE provider_file_uploads ADD COLUMN cleanup_claimed_at INTEGER;

CREATE INDEX idx_provider_file_uploads_cleanup
    ON provider_file_uploads (reference_count, deleted_at);

-- SQLite cannot alter a CHECK constraint: rebuild cleanup_runs and cleanup_items (the
-- items' foreign key follows the rename of the new runs table).
CREATE TABLE cleanup_runs_v5 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('schedule', 'cli', 'http', 'tool')),
    dry_run      INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    state        TEXT    NOT NULL,
    discovered   INTEGER NOT NULL DEFAULT 0,
    validated    INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT,
    notes        TEXT
);
INSERT INTO cleanup_runs_v5 SELECT * FROM cleanup_runs;

CREATE TABLE cleanup_items_v5 (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES cleanup_runs_v5 (id) ON DELETE CASCADE,
    upload_id         INTEGER NOT NULL,
    provider          TEXT    NOT NULL,
    provider_file_id  TEXT,
    stage             TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    at                INTEGER NOT NULL
);
INSERT INTO cleanup_items_v5 SELECT * FROM cleanup_items;

DROP TABLE cleanup_items;
DROP TABLE cleanup_runs;
ALTER TABLE cleanup_runs_v5 RENAME TO cleanup_runs;
ALTER TABLE cleanup_items_v5 RENAME TO cleanup_items;
CREATE INDEX idx_cleanup_runs_started_at ON cleanup_runs (started_at);
CREATE INDEX idx_cleanup_items_run_id ON cleanup_items (run_id);
