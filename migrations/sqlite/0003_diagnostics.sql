-- Diagnostics (SQLite): investigated errors (deduplicated by hash) and auditor
-- observations. Timestamps are Unix epoch milliseconds (UTC); JSON is TEXT; booleans 0/1.

CREATE TABLE error_investigations (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    error_hash                 TEXT    NOT NULL UNIQUE,
    error_message              TEXT    NOT NULL,
    error_type                 TEXT    NOT NULL,
    error_context              TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(error_context)),
    investigation_result       TEXT    CHECK (investigation_result IS NULL
                                              OR json_valid(investigation_result)),
    fix_recommendation         TEXT    CHECK (fix_recommendation IS NULL
                                              OR json_valid(fix_recommendation)),
    model_used                 TEXT,
    investigation_duration_ms  INTEGER,
    occurrence_count           INTEGER NOT NULL DEFAULT 1 CHECK (occurrence_count >= 0),
    first_seen_at              INTEGER NOT NULL,
    last_occurrence_at         INTEGER NOT NULL,
    created_at                 INTEGER NOT NULL,
    resolved                   INTEGER NOT NULL DEFAULT 0 CHECK (resolved IN (0, 1)),
    resolution_notes           TEXT,
    resolved_at                INTEGER
);

CREATE INDEX idx_error_investigations_resolved ON error_investigations (resolved, created_at);
CREATE INDEX idx_error_investigations_created_at ON error_investigations (created_at);

CREATE TABLE auditor_observations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tool_call_ref    TEXT,
    observation      TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    confidence       REAL,
    recommendation   TEXT,
    model_used       TEXT,
    created_at       INTEGER NOT NULL,
    metadata         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    acknowledged     INTEGER NOT NULL DEFAULT 0 CHECK (acknowledged IN (0, 1)),
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT
);

CREATE INDEX idx_auditor_observations_acknowledged
    ON auditor_observations (acknowledged, created_at);
CREATE INDEX idx_auditor_observations_created_at ON auditor_observations (created_at);
