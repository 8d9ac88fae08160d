-- The connection log's retention deletes by start time; without an index each
-- hourly run would scan every connection ever logged.
CREATE INDEX connections_connected_at ON connections (connected_at);
