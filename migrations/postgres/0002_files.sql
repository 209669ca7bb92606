-- File uploads to providers (deduplicated by content hash) and the cleanup job's audit
-- trail (PostgreSQL). Timestamps are Unix epoch milliseconds (UTC) as BIGINT.

CREATE TABLE provider_file_uploads (
    id                BIGSERIAL PRIMARY KEY,
    provider          TEXT    NOT NULL,
    provider_file_id  TEXT,
    sha256            TEXT    NOT NULL,
    filename          TEXT    NOT NULL,
    file_size_bytes   BIGINT  NOT NULL CHECK (file_size_bytes >= 0),
    mime_type         TEXT,
    purpose           TEXT,
    upload_status     TEXT    NOT NULL DEFAULT 'pending'
                      CHECK (upload_status IN ('pending', 'completed', 'failed', 'deleted')),
    upload_method     TEXT
                      CHECK (upload_method IS NULL
                             OR upload_method IN ('embedded', 'direct', 'gateway', 'blob_only')),
    blob_key          TEXT,
    reference_count   BIGINT  NOT NULL DEFAULT 0 CHECK (reference_count >= 0),
    last_used_at      BIGINT  NOT NULL,
    deleted_at        BIGINT,
    error_message     TEXT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    CONSTRAINT uk_provider_sha256 UNIQUE (provider, sha256),
    CONSTRAINT uk_provider_file_id UNIQUE (provider, provider_file_id)
);

CREATE INDEX idx_provider_file_uploads_status_last_used
    ON provider_file_uploads (upload_status, last_used_at);

CREATE TABLE cleanup_runs (
    id           BIGSERIAL PRIMARY KEY,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('schedule', 'cli', 'http')),
    dry_run      BOOLEAN NOT NULL DEFAULT FALSE,
    state        TEXT    NOT NULL,
    discovered   BIGINT  NOT NULL DEFAULT 0,
    validated    BIGINT  NOT NULL DEFAULT 0,
    deleted      BIGINT  NOT NULL DEFAULT 0,
    failed       BIGINT  NOT NULL DEFAULT 0,
    skipped      BIGINT  NOT NULL DEFAULT 0,
    outcome      TEXT,
    notes        TEXT
);

CREATE INDEX idx_cleanup_runs_started_at ON cleanup_runs (started_at);

CREATE TABLE cleanup_items (
    id                BIGSERIAL PRIMARY KEY,
    run_id            BIGINT  NOT NULL REFERENCES cleanup_runs (id) ON DELETE CASCADE,
    upload_id         BIGINT  NOT NULL,
    provider          TEXT    NOT NULL,
    provider_file_id  TEXT,
    stage             TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    at                BIGINT  NOT NULL
);

CREATE INDEX idx_cleanup_items_run_id ON cleanup_items (run_id);
