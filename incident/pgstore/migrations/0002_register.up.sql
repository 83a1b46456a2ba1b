-- The register (Store.List): kind and account as columns, and indexes for
-- newest first, ties by ID in byte order. The Store writes both columns;
-- for the rows already stored, Migrate fills them from the JSON in Go
-- after this file (backfillRegister in migrate.go): PostgreSQL cannot read
-- a field of a json value that holds \u0000 anywhere (body->>'kind' fails),
-- and a plugin's error message may hold it.
ALTER TABLE incidents
	ADD COLUMN kind    text NOT NULL DEFAULT '',
	ADD COLUMN account text NOT NULL DEFAULT '';
CREATE INDEX incidents_register ON incidents (detected_at DESC, id COLLATE "C" DESC);
CREATE INDEX incidents_register_kind ON incidents (kind, detected_at DESC, id COLLATE "C" DESC);
CREATE INDEX incidents_register_account ON incidents (account, detected_at DESC, id COLLATE "C" DESC) WHERE account <> '';
