-- Core schema (PostgreSQL): client sessions, conversation threads and their messages, and
-- the tool-call log. Timestamps are Unix epoch milliseconds (UTC) as BIGINT; JSON is JSONB.

CREATE TABLE sessions (
    id              TEXT    PRIMARY KEY,
    protocol        TEXT    NOT NULL,
    client_name     TEXT,
    client_version  TEXT,
    created_at      BIGINT  NOT NULL,
    last_seen_at    BIGINT  NOT NULL,
    closed_at       BIGINT,
    metadata        JSONB   NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX idx_sessions_last_seen_at ON sessions (last_seen_at);

CREATE TABLE conversations (
    id               TEXT    PRIMARY KEY,
    continuation_id  TEXT    NOT NULL UNIQUE,
    session_id       TEXT,
    tool             TEXT    NOT NULL,
    model            TEXT,
    provider         TEXT,
    turn_count       BIGINT  NOT NULL DEFAULT 0 CHECK (turn_count >= 0),
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    metadata         JSONB   NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX idx_conversations_session_id ON conversations (session_id);
CREATE INDEX idx_conversations_expires_at ON conversations (expires_at);

CREATE TABLE messages (
    id               BIGSERIAL PRIMARY KEY,
    conversation_id  TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq              BIGINT  NOT NULL CHECK (seq >= 1),
    role             TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content          TEXT    NOT NULL,
    model            TEXT,
    metadata         JSONB   NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    created_at       BIGINT  NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE tool_calls (
    id                BIGSERIAL PRIMARY KEY,
    started_at        BIGINT   NOT NULL,
    session_id        TEXT     NOT NULL,
    request_id        TEXT     NOT NULL,
    tool              TEXT     NOT NULL,
    protocol          TEXT     NOT NULL,
    outcome           TEXT     NOT NULL,
    error_code        TEXT,
    total_ms          DOUBLE PRECISION NOT NULL,
    global_wait_ms    DOUBLE PRECISION NOT NULL,
    provider_wait_ms  DOUBLE PRECISION NOT NULL,
    processing_ms     DOUBLE PRECISION NOT NULL,
    provider          TEXT,
    model             TEXT,
    args_bytes        BIGINT   NOT NULL CHECK (args_bytes >= 0)
);

CREATE INDEX idx_tool_calls_started_at ON tool_calls (started_at);
CREATE INDEX idx_tool_calls_tool_started_at ON tool_calls (tool, started_at);
CREATE INDEX idx_tool_calls_session_started_at ON tool_calls (session_id, started_at);
