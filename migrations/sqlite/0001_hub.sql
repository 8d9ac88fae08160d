-- The hub's schema. Types and statements are chosen so a PostgreSQL migration
-- (migrations/postgres/) can mirror it column for column: BIGINT milliseconds since
-- the Unix epoch for every time, TEXT JSON for free-form values, no SQLite-only
-- column types.

-- Every device the hub has seen, network or BLE.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,              -- 'network' | 'ble'
    last_seq    BIGINT NOT NULL DEFAULT 0,  -- highest telemetry seq stored (de-duplication)
    online      BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);

-- One row per point. `id` is the commit order: live subscriptions and replays
-- meet on it without gap or duplicate.
CREATE TABLE telemetry (
    id          INTEGER PRIMARY KEY,        -- PostgreSQL: BIGINT PRIMARY KEY
    device_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    num         DOUBLE PRECISION,           -- numbers, and booleans as 0/1: what aggregates use
    value       TEXT                        -- JSON of any value that is not a plain number
);
CREATE INDEX telemetry_series ON telemetry (device_id, key, ts);

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
    deadline    BIGINT                      -- when sent: the final result is due by then
);
CREATE INDEX commands_device ON commands (device_id, created_at);
CREATE INDEX commands_open ON commands (status) WHERE status IN ('queued', 'sent', 'delivered');

-- Every status a command went through, in order.
CREATE TABLE command_events (
    command_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX command_events_command ON command_events (command_id, at);

-- Who connected to the hub, when, from where, and how it ended.
CREATE TABLE connections (
    id              INTEGER PRIMARY KEY,
    role            TEXT NOT NULL,          -- 'device' | 'client'
    subject         TEXT,
    device_id       TEXT,
    remote          TEXT,
    connected_at    BIGINT NOT NULL,
    disconnected_at BIGINT,
    reason          TEXT
);
