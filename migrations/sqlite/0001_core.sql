-- Core schema (SQLite): client sessions, conversation threads and their messages, and the
-- tool-call log. Timestamps are Unix epoch milliseconds (UTC); JSON is stored as TEXT.

CREATE TABLE sessions (
    id              TEXT    PRIMARY KEY NOT NULL,
    protocol        TEXT    NOT NULL,
    client_name     TEXT,
    client_version  TEXT,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    closed_at       INTEGER,
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);

CREATE INDEX idx_sessions_last_seen_at ON sessions (last_seen_at);

CREATE TABLE conversations (
    id               TEXT    PRIMARY KEY NOT NULL,
    continuation_id  TEXT    NOT NULL UNIQUE,
    session_id       TEXT,
    tool             TEXT    NOT NULL,
    model            TEXT,
    provider         TEXT,
    turn_count       INTEGER NOT NULL DEFAULT 0 CHECK (turn_count >= 0),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    metadata         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);

CREATE INDEX idx_conversations_session_id ON conversations (session_id);
CREATE INDEX idx_conversations_expires_at ON conversations (expires_at);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id  TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL CHECK (seq >= 1),
    role             TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content          TEXT    NOT NULL,
    model            TEXT,
    metadata         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    idempotency_key  TEXT    NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE tool_calls (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at        INTEGER NOT NULL,
    session_id        TEXT    NOT NULL,
    request_id        TEXT    NOT NULL,
    tool              TEXT    NOT NULL,
    protocol          TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    error_code        TEXT,
    total_ms          REAL    NOT NULL,
    global_wait_ms    REAL    NOT NULL,
    provider_wait_ms  REAL    NOT NULL,
    processing_ms     REAL    NOT NULL,
    provider          TEXT,
    model             TEXT,
    args_bytes        INTEGER NOT NULL CHECK (args_bytes >= 0)
);

CREATE INDEX idx_tool_calls_started_at ON tool_calls (started_at);
CREATE INDEX idx_tool_calls_tool_started_at ON tool_calls (tool, started_at);
CREATE INDEX idx_tool_calls_session_started_at ON tool_calls (session_id, started_at);
