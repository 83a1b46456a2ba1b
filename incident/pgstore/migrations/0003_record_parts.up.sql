-- The record in parts (record model v2): the head, bounded, replaced under
-- a compare-and-swap on version; the timeline, appended; the effects
-- (deliveries and affected customers), written by key. A change writes its
-- head and its parts in one statement, at a cost that follows the change,
-- not the incident.
--
-- The incidents table becomes the head table, keeping its rows, columns
-- and indexes (the open dedup key, the open-incident order, the register).
-- It is renamed so that a replica of a release before this migration, which
-- would write whole records, fails at once instead of writing rows this
-- release cannot read.
--
-- This file only changes the schema. Migrate then splits every stored
-- record, in Go and in the same transaction (splitRecords in convert.go):
-- PostgreSQL cannot read a field of a json value that holds \u0000 anywhere,
-- and a plugin's error message may hold it.
ALTER TABLE incidents RENAME TO incident_heads;
ALTER TABLE incident_heads RENAME COLUMN body TO head;
ALTER INDEX incidents_pkey RENAME TO incident_heads_pkey;
ALTER INDEX incidents_open_dedup_key RENAME TO incident_heads_open_dedup_key;
ALTER INDEX incidents_open_detected RENAME TO incident_heads_open_detected;
ALTER INDEX incidents_register RENAME TO incident_heads_register;
ALTER INDEX incidents_register_kind RENAME TO incident_heads_register_kind;
ALTER INDEX incidents_register_account RENAME TO incident_heads_register_account;

-- chain_len and chain_head are the head's Chain, which every change is
-- checked against; deliveries_next and customers_next are where the order
-- columns of the parts stand (each change reserves a number per item).
ALTER TABLE incident_heads
	ADD COLUMN chain_len       bigint NOT NULL DEFAULT 0 CHECK (chain_len >= 0),
	ADD COLUMN chain_head      bytea  NOT NULL DEFAULT decode(repeat('00', 32), 'hex') CHECK (length(chain_head) = 32),
	ADD COLUMN deliveries_next bigint NOT NULL DEFAULT 0,
	ADD COLUMN customers_next  bigint NOT NULL DEFAULT 0;

-- The timeline: entry seq (0 is the first) of each incident, in its JSON
-- form (json keeps \u0000, which jsonb and text refuse).
CREATE TABLE incident_entries (
	incident_id text   NOT NULL,
	seq         bigint NOT NULL CHECK (seq >= 0),
	entry       json   NOT NULL,
	PRIMARY KEY (incident_id, seq)
);

-- The customer notices, by idempotency key; seq is the order they were
-- first written in, kept when a notice is replaced.
CREATE TABLE incident_deliveries (
	incident_id     text   NOT NULL,
	idempotency_key text   NOT NULL,
	seq             bigint NOT NULL,
	status          text   NOT NULL,
	delivery        json   NOT NULL,
	PRIMARY KEY (incident_id, idempotency_key)
);
CREATE UNIQUE INDEX incident_deliveries_order ON incident_deliveries (incident_id, seq);
CREATE INDEX incident_deliveries_status ON incident_deliveries (incident_id, status, seq);

-- The affected customers, by recipient ID (ID, or Email when ID is empty);
-- seq as for deliveries.
CREATE TABLE incident_customers (
	incident_id  text   NOT NULL,
	recipient_id text   NOT NULL,
	seq          bigint NOT NULL,
	customer     json   NOT NULL,
	PRIMARY KEY (incident_id, recipient_id)
);
CREATE UNIQUE INDEX incident_customers_order ON incident_customers (incident_id, seq);

-- Renew extends every lease of one owner in one statement.
CREATE INDEX leases_owner ON leases (owner);
