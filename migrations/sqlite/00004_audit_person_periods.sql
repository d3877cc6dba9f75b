-- Audit retention (package audit): a person's key is per (person, period),
-- the period being the UTC calendar month of the event ("2026-11"), so that
-- the retention job can erase whole months. Keys made before this migration
-- keep working as the person's legacy period '' (undated): they are erased
-- by ErasePerson, and by retention once every event they cover is older
-- than the cutoff. Readable fields record the period of the key that seals
-- them.

-- +goose Up
CREATE TABLE audit_person_keys_v2 (
    person TEXT NOT NULL,
    period TEXT NOT NULL, -- 'YYYY-MM' (UTC month of the events), '' for legacy keys
    sealed BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (person, period)
);
INSERT INTO audit_person_keys_v2 (person, period, sealed, created_at)
    SELECT person, '', sealed, created_at FROM audit_person_keys;
DROP TABLE audit_person_keys;
ALTER TABLE audit_person_keys_v2 RENAME TO audit_person_keys;
CREATE INDEX audit_person_keys_period_idx ON audit_person_keys (period);

ALTER TABLE audit_readable ADD COLUMN period TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_readable_period_idx ON audit_readable (period, person);

-- The key epoch counts erasures: a writer that read person keys at one
-- epoch knows they are all still stored while it has not moved, and need
-- not read them again for every batch.
CREATE TABLE audit_key_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO audit_key_epoch (id, epoch) VALUES (1, 0);

-- +goose Down
DROP TABLE audit_key_epoch;
-- Only legacy keys fit the old one-key-per-person table: period keys are
-- dropped (their readable fields can no longer be opened: an erasure).
DROP INDEX audit_readable_period_idx;
DELETE FROM audit_readable WHERE period <> '';
ALTER TABLE audit_readable DROP COLUMN period;
CREATE TABLE audit_person_keys_v1 (
    person TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at DATETIME NOT NULL
);
INSERT INTO audit_person_keys_v1 (person, sealed, created_at)
    SELECT person, sealed, created_at FROM audit_person_keys WHERE period = '';
DROP TABLE audit_person_keys;
ALTER TABLE audit_person_keys_v1 RENAME TO audit_person_keys;
