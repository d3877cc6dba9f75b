-- Holders (one record per mailbox), the structures serving them, and their
-- one-time codes (only an HMAC of each code is stored).

-- +goose Up
CREATE TABLE holders (
    id TEXT PRIMARY KEY,
    mailbox TEXT NOT NULL UNIQUE, -- lower-cased
    display_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '', -- E.164
    email TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'fr',
    staff_id TEXT REFERENCES staff (id) ON DELETE SET NULL,
    contact_confirmed_at DATETIME,
    created_at DATETIME NOT NULL
);
CREATE INDEX holders_staff_id_idx ON holders (staff_id);

CREATE TABLE holder_structures (
    holder_id TEXT NOT NULL REFERENCES holders (id) ON DELETE CASCADE,
    structure_id TEXT NOT NULL REFERENCES structures (id) ON DELETE CASCADE,
    mailbox TEXT NOT NULL, -- copy of holders.mailbox: pages by mailbox within a structure
    search_text TEXT NOT NULL DEFAULT '', -- lower-cased mailbox and name: searches within a structure
    created_at DATETIME NOT NULL,
    PRIMARY KEY (holder_id, structure_id)
);
CREATE UNIQUE INDEX holder_structures_structure_mailbox_idx ON holder_structures (structure_id, mailbox);

CREATE TABLE one_time_codes (
    id TEXT PRIMARY KEY,
    holder_id TEXT NOT NULL REFERENCES holders (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    channel TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at DATETIME,
    voided_at DATETIME
);
CREATE INDEX one_time_codes_holder_idx ON one_time_codes (holder_id, purpose, created_at);
CREATE INDEX one_time_codes_created_at_idx ON one_time_codes (created_at);

-- +goose Down
DROP TABLE one_time_codes;
DROP TABLE holder_structures;
DROP TABLE holders;
