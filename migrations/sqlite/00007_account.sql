-- A person's own account (issue 4, part 3): what the session list shows of
-- each browser session, and staff password-reset links.

-- +goose Up
-- When the session was last used (written at most once a minute; the idle
-- timeout counts from it), and where it was opened from.
ALTER TABLE web_sessions ADD COLUMN last_seen_at DATETIME;
ALTER TABLE web_sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
ALTER TABLE web_sessions ADD COLUMN browser TEXT NOT NULL DEFAULT '';
ALTER TABLE web_sessions ADD COLUMN os TEXT NOT NULL DEFAULT '';
UPDATE web_sessions SET last_seen_at = created_at;

-- Single-use password-reset links; only the SHA-256 of the token is stored.
CREATE TABLE password_resets (
    token_hash BLOB PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at DATETIME
);
CREATE INDEX password_resets_staff_id_idx ON password_resets (staff_id);

-- +goose Down
DROP TABLE password_resets;
ALTER TABLE web_sessions DROP COLUMN os;
ALTER TABLE web_sessions DROP COLUMN browser;
ALTER TABLE web_sessions DROP COLUMN ip;
ALTER TABLE web_sessions DROP COLUMN last_seen_at;
