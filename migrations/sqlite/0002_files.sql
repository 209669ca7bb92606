-- File uploads to providers (deduplicated by content hash) and the cleanup job's audit
-- trail (SQLite). Timestamps are Unix epoch milliseconds (UTC); booleans are INTEGER 0/1.

CREATE TABLE provider_file_uploads (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    provider          TEXT    NOT NULL,
    provider_file_id  TEXT,
    sha256            TEXT    NOT NULL,
    filename          TEXT    NOT NULL,
    file_size_bytes   INTEGER NOT NULL CHECK (file_size_bytes >= 0),
    mime_type         TEXT,
    purpose           TEXT,
    upload_status     TEXT    NOT NULL DEFAULT 'pending'
                      CHECK (upload_status IN ('pending', 'completed', 'failed', 'deleted')),
    upload_method     TEXT
                      CHECK (upload_method IS NULL
                             OR upload_method IN ('embedded', 'direct', 'gateway', 'blob_only')),
    blob_key          TEXT,
    reference_count   INTEGER NOT NULL DEFAULT 0 CHECK (reference_count >= 0),
    last_used_at      INTEGER NOT NULL,
    deleted_at        INTEGER,
    error_message     TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- Named unique indexes (SQLite has no named table constraints that show up as indexes).
CREATE UNIQUE INDEX uk_provider_sha256 ON provider_file_uploads (provider, sha256);
CREATE UNIQUE INDEX uk_provider_file_id ON provider_file_uploads (provider, provider_file_id);
CREATE INDEX idx_provider_file_uploads_status_last_used
    ON provider_file_uploads (upload_status, last_used_at);

CREATE TABLE cleanup_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('schedule', 'cli', 'http')),
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

CREATE INDEX idx_cleanup_runs_started_at ON cleanup_runs (started_at);

CREATE TABLE cleanup_items (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES cleanup_runs (id) ON DELETE CASCADE,
    upload_id         INTEGER NOT NULL,
    provider          TEXT    NOT NULL,
    provider_file_id  TEXT,
    stage             TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    at                INTEGER NOT NULL
);

CREATE INDEX idx_cleanup_items_run_id ON cleanup_items (run_id);
