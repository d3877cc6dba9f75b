-- Audit retention (package audit): a person's key is per (person, period),
-- the period being the UTC calendar month of the event ("2026-11"), so that
-- the retention job can erase whole months. Keys made before this migration
-- keep working as the person's legacy period '' (undated): they are erased
-- by ErasePerson, and by retention once every event they cover is older
-- than the cutoff. Readable fields record the period of the key that seals
-- them.

-- +goose Up
ALTER TABLE audit_person_keys ADD COLUMN period TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_person_keys ALTER COLUMN period DROP DEFAULT;
ALTER TABLE audit_person_keys DROP CONSTRAINT audit_person_keys_pkey;
ALTER TABLE audit_person_keys ADD PRIMARY KEY (person, period);
CREATE INDEX audit_person_keys_period_idx ON audit_person_keys (period);

ALTER TABLE audit_readable ADD COLUMN period TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_readable_period_idx ON audit_readable (period, person);

-- The key epoch counts erasures: a writer that read person keys at one
-- epoch knows they are all still stored while it has not moved, and need
-- not read them again for every batch.
CREATE TABLE audit_key_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO audit_key_epoch (id, epoch) VALUES (1, 0);

-- +goose Down
DROP TABLE audit_key_epoch;
-- Only legacy keys fit the old one-key-per-person table: period keys are
-- dropped (their readable fields can no longer be opened: an erasure).
DROP INDEX audit_readable_period_idx;
DELETE FROM audit_readable WHERE period <> '';
ALTER TABLE audit_readable DROP COLUMN period;
DROP INDEX audit_person_keys_period_idx;
DELETE FROM audit_person_keys WHERE period <> '';
ALTER TABLE audit_person_keys DROP CONSTRAINT audit_person_keys_pkey;
ALTER TABLE audit_person_keys DROP COLUMN period;
ALTER TABLE audit_person_keys ADD PRIMARY KEY (person);
