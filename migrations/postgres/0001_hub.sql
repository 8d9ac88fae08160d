-- The hub's schema on PostgreSQL: migrations/sqlite/ column for column (BIGINT
-- milliseconds since the Unix epoch for every time, TEXT JSON for free-form values),
-- so both stores run the same queries. What differs is said where it does.

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,              -- 'network' | 'ble'
    last_seq    BIGINT NOT NULL DEFAULT 0,  -- highest telemetry seq stored (de-duplication)
    online      BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);

-- One row per point; `id` is the commit order across every instance sharing this
-- database (telemetry_head below hands the ids out).
CREATE TABLE telemetry (
    id          BIGINT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    num         DOUBLE PRECISION,           -- numbers, and booleans as 0/1: what aggregates use
    value       TEXT                        -- JSON of any value that is not a plain number
);
CREATE INDEX telemetry_series ON telemetry (device_id, key, ts);
-- Retention deletes by time alone. Points arrive roughly in time order, so a BRIN
-- index (a few pages for millions of rows, next to nothing per insert) finds the
-- old ones; a B-tree on ts would cost every insert as much as the series index.
CREATE INDEX telemetry_ts ON telemetry USING BRIN (ts);

-- The id the next point gets. An append locks this one row first and updates it
-- last, so appends from every instance take turns and ids follow commit order: a
-- reader never sees id n+1 committed before id n.
CREATE TABLE telemetry_head (
    one         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    next_id     BIGINT NOT NULL
);
INSERT INTO telemetry_head (one, next_id) VALUES (TRUE, 1);

CREATE TABLE commands (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    params      TEXT NOT NULL,              -- JSON
    priority    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    result      TEXT,                       -- JSON from the device
    error       TEXT,
    issued_by   TEXT,
    timeout_ms  BIGINT NOT NULL,            -- from sent to a final result
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,            -- a command still queued then expires
    deadline    BIGINT,                     -- when sent: the final result is due by then
    rowid       BIGSERIAL NOT NULL          -- insertion order, as SQLite's implicit rowid
);
CREATE INDEX commands_device ON commands (device_id, created_at);
CREATE INDEX commands_open ON commands (status) WHERE status IN ('queued', 'sent', 'delivered');

CREATE TABLE command_events (
    command_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    rowid       BIGSERIAL NOT NULL          -- insertion order, as SQLite's implicit rowid
);
CREATE INDEX command_events_command ON command_events (command_id, at);

CREATE TABLE connections (
    id              BIGINT PRIMARY KEY,
    role            TEXT NOT NULL,          -- 'device' | 'client'
    subject         TEXT,
    device_id       TEXT,
    remote          TEXT,
    connected_at    BIGINT NOT NULL,
    disconnected_at BIGINT,
    reason          TEXT
);
CREATE INDEX connections_connected_at ON connections (connected_at);
-- Each process's connection-log ids are a block of 2^32 from here (several
-- instances share the table; none waits on the database to number a connection).
CREATE SEQUENCE connection_id_blocks START 1;
