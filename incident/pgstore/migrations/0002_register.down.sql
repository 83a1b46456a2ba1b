DROP INDEX IF EXISTS incidents_register_account;
DROP INDEX IF EXISTS incidents_register_kind;
DROP INDEX IF EXISTS incidents_register;
ALTER TABLE incidents DROP COLUMN IF EXISTS account, DROP COLUMN IF EXISTS kind;
