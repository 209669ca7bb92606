-- Files (SQLite): every reference to an upload is a lease with an expiry. A lease taken for
-- one tool call (`call`) is released when the call ends; one handed to the user by an
-- upload tool (`upload`) is released by `kimi_manage_files` delete or when it expires
-- (`files.reference_ttl_secs`). `reference_count` stays the number of leases of the row.
-- Blob-only files have no upload row: their lease names the blob (`blob_key`), so the
-- blob collection of the cleanup keeps them while the lease lives.

CREATE TABLE file_leases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upload_id   INTEGER REFERENCES provider_file_uploads (id) ON DELETE CASCADE,
    blob_key    TEXT,
    scope       TEXT    NOT NULL CHECK (scope IN ('call', 'upload')),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK (upload_id IS NOT NULL OR blob_key IS NOT NULL)
);

CREATE INDEX idx_file_leases_upload ON file_leases (upload_id);
CREATE INDEX idx_file_leases_expires ON file_leases (expires_at);
CREATE INDEX idx_file_leases_blob ON file_leases (blob_key);
CREATE INDEX idx_provider_file_uploads_blob ON provider_file_uploads (blob_key);

-- References taken before leases existed become `upload` leases that expire a day after
-- their last use.
INSERT INTO file_leases (upload_id, scope, expires_at, created_at)
WITH RECURSIVE n (upload_id, k, t) AS (
    SELECT id, reference_count, last_used_at FROM provider_file_uploads WHERE reference_count > 0
    UNION ALL
    SELECT upload_id, k - 1, t FROM n WHERE k > 1
)
SELECT upload_id, 'upload', t + 86400000, t FROM n;

-- Run totals of the new stages: references expired and blobs collected.
ALTER TABLE cleanup_runs ADD COLUMN leases_expired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cleanup_runs ADD COLUMN blobs_deleted INTEGER NOT NULL DEFAULT 0;
