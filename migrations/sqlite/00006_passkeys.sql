-- Passkeys (WebAuthn credentials) of holders and staff, the WebAuthn
-- ceremonies in progress (kept in the database so that any replica can
-- finish a ceremony another began), and the holders' passkey enrolment links
-- a mediator starts (only the SHA-256 of a link's token is kept).

-- +goose Up
CREATE TABLE passkeys (
    credential_id BLOB PRIMARY KEY,
    owner TEXT NOT NULL, -- "holder:<id>" or "staff:<id>"
    user_handle BLOB NOT NULL,
    public_key BLOB NOT NULL,
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid BLOB,
    sign_count INTEGER NOT NULL DEFAULT 0,
    transports TEXT NOT NULL DEFAULT '[]',
    user_verified BOOLEAN NOT NULL DEFAULT false,
    backup_eligible BOOLEAN NOT NULL DEFAULT false,
    backup_state BOOLEAN NOT NULL DEFAULT false,
    name TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL,
    last_used_at DATETIME
);
CREATE INDEX passkeys_owner_idx ON passkeys (owner, created_at);

CREATE TABLE passkey_ceremonies (
    id_hash BLOB PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '', -- empty for a sign-in with a discoverable credential
    purpose TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at DATETIME
);
CREATE INDEX passkey_ceremonies_expires_at_idx ON passkey_ceremonies (expires_at);

CREATE TABLE passkey_enrolments (
    token_hash BLOB PRIMARY KEY,
    holder_id TEXT NOT NULL,
    structure_id TEXT NOT NULL,
    started_by TEXT NOT NULL, -- the mediator's staff id
    device_hash BLOB, -- SHA-256 of the secret given to the browser that typed the code
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    verified_at DATETIME,
    used_at DATETIME
);
CREATE INDEX passkey_enrolments_holder_idx ON passkey_enrolments (holder_id);
CREATE INDEX passkey_enrolments_expires_at_idx ON passkey_enrolments (expires_at);

-- +goose Down
DROP TABLE passkey_enrolments;
DROP TABLE passkey_ceremonies;
DROP TABLE passkeys;
