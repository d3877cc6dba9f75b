-- Structure administration (issue 4, parts 4 and 5): banner messages on the
-- home pages, and indexes that let deactivation find every token and code
-- of one person at once (the existing indexes start with client_id).

-- +goose Up
CREATE TABLE banners (
    id TEXT PRIMARY KEY,
    -- '' for a platform-wide banner (no structure row), else the structure's id.
    structure_id TEXT NOT NULL DEFAULT '',
    audience TEXT NOT NULL CHECK (audience IN ('holders', 'staff')),
    text_fr TEXT NOT NULL,
    text_en TEXT NOT NULL DEFAULT '',
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX banners_structure_idx ON banners (structure_id, starts_at);
CREATE INDEX banners_current_idx ON banners (audience, ends_at);

CREATE INDEX access_tokens_subject_idx ON access_tokens (subject);
CREATE INDEX refresh_tokens_subject_idx ON refresh_tokens (subject);
CREATE INDEX authorization_codes_subject_idx ON authorization_codes (subject);

-- +goose Down
DROP INDEX authorization_codes_subject_idx;
DROP INDEX refresh_tokens_subject_idx;
DROP INDEX access_tokens_subject_idx;
DROP INDEX banners_current_idx;
DROP INDEX banners_structure_idx;
DROP TABLE banners;
