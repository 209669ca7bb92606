-- Files (PostgreSQL): every reference to an upload is a lease with an expiry. A lease taken
-- for one tool call (`call`) is released when the call ends; one handed to the user by an
-- upload tool (`upload`) is released by `kimi_manage_files` delete or when it expires
-- (`files.reference_ttl_secs`). `reference_count` stays the number of leases of the row.
-- Blob-only files have no upload row: their lease names the blob (`blob_key`), so the
-- blob collection of the cleanup keeps them while the lease lives.

CREATE TABLE file_leases (
    id          BIGSERIAL PRIMARY KEY,
    upload_id   BIGINT  REFERENCES provider_file_uploads (id) ON DELETE CASCADE,
    blob_key    TEXT,
    scope       TEXT    NOT NULL CHECK (scope IN ('call', 'upload')),
    expires_at  BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    CHECK (upload_id IS NOT NULL OR blob_key IS NOT NULL)
);

CREATE INDEX idx_file_leases_upload ON file_leases (upload_id);
CREATE INDEX idx_file_leases_expires ON file_leases (expires_at);
CREATE INDEX idx_file_leases_blob ON file_leases (blob_key);
CREATE INDEX idx_provider_file_uploads_blob ON provider_file_uploads (blob_key);

-- References taken before leases existed become `upload` leases that expire a day after
-- their last use.
INSERT INTO file_leases (upload_id, scope, expires_at, created_at)
SELECT u.id, 'upload', u.last_used_at + 86400000, u.last_used_at
FROM provider_file_uploads u, generate_series(1, u.reference_count) AS g
WHERE u.reference_count > 0;

-- Run totals of the new stages: references expired and blobs collected.
ALTER TABLE cleanup_runs ADD COLUMN leases_expired BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cleanup_runs ADD COLUMN blobs_deleted BIGINT NOT NULL DEFAULT 0;
