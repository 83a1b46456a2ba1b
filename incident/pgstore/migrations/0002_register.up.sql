-- The register (Store.List): kind and account as columns, filled from the
-- JSON of the incidents already stored (written with the field names of
-- either encoding: "kind" since the register, "Kind" before), and indexes
-- for newest first, ties by ID in byte order.
ALTER TABLE incidents
	ADD COLUMN kind    text NOT NULL DEFAULT '',
	ADD COLUMN account text NOT NULL DEFAULT '';
UPDATE incidents
   SET kind    = coalesce(body->>'kind', body->>'Kind', ''),
       account = coalesce(body->>'account', body->>'Account', '');
CREATE INDEX incidents_register ON incidents (detected_at DESC, id COLLATE "C" DESC);
CREATE INDEX incidents_register_kind ON incidents (kind, detected_at DESC, id COLLATE "C" DESC);
CREATE INDEX incidents_register_account ON incidents (account, detected_at DESC, id COLLATE "C" DESC) WHERE account <> '';
