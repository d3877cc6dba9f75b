-- Passkeys (WebAuthn credentials) of holders and staff, the WebAuthn
-- ceremonies in progress (kept in the database so that any replica can
-- finish a ceremony another began), and the holders' passkey enrolment links
-- a mediator starts (only the SHA-256 of a link's token is kept).

-- +goose Up
CREATE TABLE passkeys (
    credential_id bytea PRIMARY KEY,
    owner text NOT NULL, -- "holder:<id>" or "staff:<id>"
    user_handle bytea NOT NULL,
    public_key bytea NOT NULL,
    attestation_format text NOT NULL DEFAULT '',
    aaguid bytea,
    sign_count bigint NOT NULL DEFAULT 0,
    transports text NOT NULL DEFAULT '[]',
    user_verified boolean NOT NULL DEFAULT false,
    backup_eligible boolean NOT NULL DEFAULT false,
    backup_state boolean NOT NULL DEFAULT false,
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    last_used_at timestamptz
);
CREATE INDEX passkeys_owner_idx ON passkeys (owner, created_at);

CREATE TABLE passkey_ceremonies (
    id_hash bytea PRIMARY KEY,
    owner text NOT NULL DEFAULT '', -- empty for a sign-in with a discoverable credential
    purpose text NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX passkey_ceremonies_expires_at_idx ON passkey_ceremonies (expires_at);

CREATE TABLE passkey_enrolments (
    token_hash bytea PRIMARY KEY,
    holder_id text NOT NULL,
    structure_id text NOT NULL,
    started_by text NOT NULL, -- the mediator's staff id
    device_hash bytea, -- SHA-256 of the secret given to the browser that typed the code
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    verified_at timestamptz,
    used_at timestamptz
);
CREATE INDEX passkey_enrolments_holder_idx ON passkey_enrolments (holder_id);
CREATE INDEX passkey_enrolments_expires_at_idx ON passkey_enrolments (expires_at);

-- +goose Down
DROP TABLE passkey_enrolments;
DROP TABLE passkey_ceremonies;
DROP TABLE passkeys;
