-- Back to whole records. This reassembles, it does not refuse: before this
-- file runs, MigrateDown writes every incident whole (head, timeline,
-- deliveries, customers) into its head column, in its JSON form, in Go and
-- in the same transaction (joinRecords in convert.go). The fields of the
-- record that releases before this migration do not know (chain, outreach,
-- affected) stay in the JSON, where those releases ignore them.
DROP INDEX leases_owner;
DROP TABLE incident_customers;
DROP TABLE incident_deliveries;
DROP TABLE incident_entries;
ALTER TABLE incident_heads
	DROP COLUMN chain_len,
	DROP COLUMN chain_head,
	DROP COLUMN deliveries_next,
	DROP COLUMN customers_next;
ALTER INDEX incident_heads_register_account RENAME TO incidents_register_account;
ALTER INDEX incident_heads_register_kind RENAME TO incidents_register_kind;
ALTER INDEX incident_heads_register RENAME TO incidents_register;
ALTER INDEX incident_heads_open_detected RENAME TO incidents_open_detected;
ALTER INDEX incident_heads_open_dedup_key RENAME TO incidents_open_dedup_key;
ALTER INDEX incident_heads_pkey RENAME TO incidents_pkey;
ALTER TABLE incident_heads RENAME COLUMN head TO body;
ALTER TABLE incident_heads RENAME TO incidents;
