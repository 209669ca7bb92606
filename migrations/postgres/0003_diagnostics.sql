-- Diagnostics (PostgreSQL): investigated errors (deduplicated by hash) and auditor
-- observations. Timestamps are Unix epoch milliseconds (UTC) as BIGINT; JSON is JSONB.

CREATE TABLE error_investigations (
    id                         BIGSERIAL PRIMARY KEY,
    error_hash                 TEXT    NOT NULL UNIQUE,
    error_message              TEXT    NOT NULL,
    error_type                 TEXT    NOT NULL,
    error_context              JSONB   NOT NULL DEFAULT '{}'::jsonb,
    investigation_result       JSONB,
    fix_recommendation         JSONB,
    model_used                 TEXT,
    investigation_duration_ms  BIGINT,
    occurrence_count           BIGINT  NOT NULL DEFAULT 1 CHECK (occurrence_count >= 0),
    first_seen_at              BIGINT  NOT NULL,
    last_occurrence_at         BIGINT  NOT NULL,
    created_at                 BIGINT  NOT NULL,
    resolved                   BOOLEAN NOT NULL DEFAULT FALSE,
    resolution_notes           TEXT,
    resolved_at                BIGINT
);

CREATE INDEX idx_error_investigations_resolved ON error_investigations (resolved, created_at);
CREATE INDEX idx_error_investigations_created_at ON error_investigations (created_at);

CREATE TABLE auditor_observations (
    id               BIGSERIAL PRIMARY KEY,
    tool_call_ref    TEXT,
    observation      TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    confidence       DOUBLE PRECISION,
    recommendation   TEXT,
    model_used       TEXT,
    created_at       BIGINT  NOT NULL,
    metadata         JSONB   NOT NULL DEFAULT '{}'::jsonb,
    acknowledged     BOOLEAN NOT NULL DEFAULT FALSE,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT
);

CREATE INDEX idx_auditor_observations_acknowledged
    ON auditor_observations (acknowledged, created_at);
CREATE INDEX idx_auditor_observations_created_at ON auditor_observations (created_at);
