-- The first schema: what pgstore's Migrate created before schema versions
-- existed. Every statement is IF NOT EXISTS, so that a database created then
-- is adopted as version 1 unchanged.
CREATE TABLE IF NOT EXISTS incidents (
	id          text        PRIMARY KEY,
	dedup_key   text        NOT NULL,
	state       text        NOT NULL,
	open        boolean     NOT NULL,
	version     bigint      NOT NULL CHECK (version > 0),
	detected_at timestamptz NOT NULL,
	body        json        NOT NULL
);
-- One open incident per dedup key; closed and dismissed ones do not hold it.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_dedup_key ON incidents (dedup_key) WHERE open;
-- ListOpen's order, and the resume scan of every replica.
CREATE INDEX IF NOT EXISTS incidents_open_detected ON incidents (detected_at, id COLLATE "C") WHERE open;

-- A lease per incident: who drives it, until when (by the server's clock).
-- Not a column of incidents, since a lease may be taken before the incident
-- is stored.
CREATE TABLE IF NOT EXISTS leases (
	incident_id text        PRIMARY KEY,
	owner       text        NOT NULL,
	until       timestamptz NOT NULL
);
