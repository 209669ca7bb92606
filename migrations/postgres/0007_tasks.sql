-- MCP tasks (spec 2025-11-25): a task-augmented tools/call stored with its status and, once
-- terminal, its CallToolResult (JSON text), so it can be read after the client went away or
-- the server restarted. Rows are scoped to a principal (the caller's identity) and live for
-- their TTL from creation: reads ignore expired rows; the maintenance tick deletes them.
CREATE TABLE tasks (
    task_id          TEXT    PRIMARY KEY,
    principal        TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    tool             TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('working', 'input_required', 'completed', 'failed', 'cancelled')),
    status_message   TEXT,
    result           TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    ttl_ms           BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    poll_interval_ms BIGINT  NOT NULL
);

-- tasks/list: a principal's tasks, newest first (keyset pagination on (created_at, task_id)).
CREATE INDEX idx_tasks_principal ON tasks (principal, created_at, task_id);
-- The maintenance tick's expiry sweep.
CREATE INDEX idx_tasks_expires ON tasks (expires_at);
