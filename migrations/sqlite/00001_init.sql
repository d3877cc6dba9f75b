-- Schema of mandated for SQLite. Times are UTC; lists are JSON arrays in TEXT;
-- booleans are INTEGER 0/1. Token records are keyed by the token's signature.

-- +goose Up
CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash BLOB,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types TEXT NOT NULL DEFAULT '[]',
    response_types TEXT NOT NULL DEFAULT '[]',
    scopes TEXT NOT NULL DEFAULT '[]',
    audience TEXT NOT NULL DEFAULT '[]',
    auth_method TEXT NOT NULL,
    jwks_uri TEXT NOT NULL DEFAULT '',
    jwks BLOB,
    auth_signing_alg TEXT NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL
);
CREATE INDEX clients_created_at_idx ON clients (created_at);

CREATE TABLE authorization_codes (
    signature TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    requested_at DATETIME NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '[]',
    granted_scopes TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience TEXT NOT NULL DEFAULT '[]',
    form TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    expires_at DATETIME
);
CREATE INDEX authorization_codes_request_id_idx ON authorization_codes (request_id);
CREATE INDEX authorization_codes_client_subject_idx ON authorization_codes (client_id, subject);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

CREATE TABLE pkce_sessions (
    signature TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    requested_at DATETIME NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '[]',
    granted_scopes TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience TEXT NOT NULL DEFAULT '[]',
    form TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    expires_at DATETIME
);
CREATE INDEX pkce_sessions_request_id_idx ON pkce_sessions (request_id);
CREATE INDEX pkce_sessions_client_subject_idx ON pkce_sessions (client_id, subject);
CREATE INDEX pkce_sessions_expires_at_idx ON pkce_sessions (expires_at);

CREATE TABLE access_tokens (
    signature TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    requested_at DATETIME NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '[]',
    granted_scopes TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience TEXT NOT NULL DEFAULT '[]',
    form TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    expires_at DATETIME
);
CREATE INDEX access_tokens_request_id_idx ON access_tokens (request_id);
CREATE INDEX access_tokens_client_subject_idx ON access_tokens (client_id, subject);
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    signature TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    requested_at DATETIME NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '[]',
    granted_scopes TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience TEXT NOT NULL DEFAULT '[]',
    form TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    expires_at DATETIME,
    access_token_signature TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_tokens_request_id_idx ON refresh_tokens (request_id);
CREATE INDEX refresh_tokens_client_subject_idx ON refresh_tokens (client_id, subject);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- JWT IDs already seen: client assertions (private_key_jwt) and RFC 7523 grants.
CREATE TABLE used_jtis (
    jti TEXT PRIMARY KEY,
    expires_at DATETIME NOT NULL
);
CREATE INDEX used_jtis_expires_at_idx ON used_jtis (expires_at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_jwk BLOB NOT NULL,
    sealed_private BLOB NOT NULL,
    created_at DATETIME NOT NULL,
    retired_at DATETIME
);
CREATE INDEX signing_keys_created_at_idx ON signing_keys (created_at);

CREATE TABLE consents (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL DEFAULT '[]',
    granted_at DATETIME NOT NULL,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);

CREATE TABLE rfc7523_trusts (
    id TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    allow_any_subject INTEGER NOT NULL DEFAULT 0,
    key_id TEXT NOT NULL,
    public_jwk BLOB NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    expires_at DATETIME NOT NULL,
    created_at DATETIME NOT NULL,
    UNIQUE (issuer, subject, key_id)
);

CREATE TABLE structures (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at DATETIME NOT NULL
);

CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    structure_id TEXT REFERENCES structures (id),
    platform INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '',
    sealed_totp BLOB,
    last_totp_step INTEGER NOT NULL DEFAULT 0,
    created_at DATETIME NOT NULL,
    last_sign_in_at DATETIME
);
CREATE INDEX staff_structure_id_idx ON staff (structure_id);

CREATE TABLE enrolments (
    token_hash BLOB PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    sealed_pending_totp BLOB,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at DATETIME
);
CREATE INDEX enrolments_staff_id_idx ON enrolments (staff_id);

CREATE TABLE sign_in_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    failure_key TEXT NOT NULL,
    failed_at DATETIME NOT NULL
);
CREATE INDEX sign_in_failures_key_idx ON sign_in_failures (failure_key, failed_at);

CREATE TABLE web_sessions (
    id_hash BLOB PRIMARY KEY,
    subject TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX web_sessions_subject_idx ON web_sessions (subject);
CREATE INDEX web_sessions_expires_at_idx ON web_sessions (expires_at);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE sign_in_failures;
DROP TABLE enrolments;
DROP TABLE staff;
DROP TABLE structures;
DROP TABLE rfc7523_trusts;
DROP TABLE consents;
DROP TABLE signing_keys;
DROP TABLE used_jtis;
DROP TABLE refresh_tokens;
DROP TABLE access_tokens;
DROP TABLE pkce_sessions;
DROP TABLE authorization_codes;
DROP TABLE clients;
