-- The dedup manager's pre-check "does any file of this provider have exactly this size?"
-- (content of a size no row has is certainly new: it is uploaded in one read, hashed on the
-- way). This index answers it without a scan.
CREATE INDEX idx_provider_file_uploads_size ON provider_file_uploads (provider, file_size_bytes);
