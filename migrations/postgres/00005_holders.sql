-- Holders (one record per mailbox), the structures serving them, and their
-- one-time codes (only an HMAC of each code is stored).

-- +goose Up
CREATE TABLE holders (
    id text PRIMARY KEY,
    mailbox text NOT NULL UNIQUE, -- lower-cased
    display_name text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '', -- E.164
    email text NOT NULL DEFAULT '',
    language text NOT NULL DEFAULT 'fr',
    staff_id text REFERENCES staff (id) ON DELETE SET NULL,
    contact_confirmed_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX holders_staff_id_idx ON holders (staff_id);

CREATE TABLE holder_structures (
    holder_id text NOT NULL REFERENCES holders (id) ON DELETE CASCADE,
    structure_id text NOT NULL REFERENCES structures (id) ON DELETE CASCADE,
    mailbox text COLLATE "C" NOT NULL, -- copy of holders.mailbox: pages by mailbox within a structure
    search_text text NOT NULL DEFAULT '', -- lower-cased mailbox and name: searches within a structure
    created_at timestamptz NOT NULL,
    PRIMARY KEY (holder_id, structure_id)
);
CREATE UNIQUE INDEX holder_structures_structure_mailbox_idx ON holder_structures (structure_id, mailbox);

CREATE TABLE one_time_codes (
    id text PRIMARY KEY,
    holder_id text NOT NULL REFERENCES holders (id) ON DELETE CASCADE,
    purpose text NOT NULL,
    code_hash bytea NOT NULL,
    channel text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    voided_at timestamptz
);
CREATE INDEX one_time_codes_holder_idx ON one_time_codes (holder_id, purpose, created_at);
CREATE INDEX one_time_codes_created_at_idx ON one_time_codes (created_at);

-- +goose Down
DROP TABLE one_time_codes;
DROP TABLE holder_structures;
DROP TABLE holders;
