-- Schema of mandated for PostgreSQL. Times are timestamptz (UTC); lists are
-- JSON arrays in text. Token records are keyed by the token's signature.

-- +goose Up
CREATE TABLE clients (
    id text PRIMARY KEY,
    name text NOT NULL,
    secret_hash bytea,
    redirect_uris text NOT NULL DEFAULT '[]',
    grant_types text NOT NULL DEFAULT '[]',
    response_types text NOT NULL DEFAULT '[]',
    scopes text NOT NULL DEFAULT '[]',
    audience text NOT NULL DEFAULT '[]',
    auth_method text NOT NULL,
    jwks_uri text NOT NULL DEFAULT '',
    jwks bytea,
    auth_signing_alg text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);
CREATE INDEX clients_created_at_idx ON clients (created_at);

CREATE TABLE authorization_codes (
    signature text PRIMARY KEY,
    request_id text NOT NULL,
    requested_at timestamptz NOT NULL,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject text NOT NULL DEFAULT '',
    scopes text NOT NULL DEFAULT '[]',
    granted_scopes text NOT NULL DEFAULT '[]',
    requested_audience text NOT NULL DEFAULT '[]',
    granted_audience text NOT NULL DEFAULT '[]',
    form text NOT NULL DEFAULT '',
    session text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    expires_at timestamptz
);
CREATE INDEX authorization_codes_request_id_idx ON authorization_codes (request_id);
CREATE INDEX authorization_codes_client_subject_idx ON authorization_codes (client_id, subject);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

CREATE TABLE pkce_sessions (
    signature text PRIMARY KEY,
    request_id text NOT NULL,
    requested_at timestamptz NOT NULL,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject text NOT NULL DEFAULT '',
    scopes text NOT NULL DEFAULT '[]',
    granted_scopes text NOT NULL DEFAULT '[]',
    requested_audience text NOT NULL DEFAULT '[]',
    granted_audience text NOT NULL DEFAULT '[]',
    form text NOT NULL DEFAULT '',
    session text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    expires_at timestamptz
);
CREATE INDEX pkce_sessions_request_id_idx ON pkce_sessions (request_id);
CREATE INDEX pkce_sessions_client_subject_idx ON pkce_sessions (client_id, subject);
CREATE INDEX pkce_sessions_expires_at_idx ON pkce_sessions (expires_at);

CREATE TABLE access_tokens (
    signature text PRIMARY KEY,
    request_id text NOT NULL,
    requested_at timestamptz NOT NULL,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject text NOT NULL DEFAULT '',
    scopes text NOT NULL DEFAULT '[]',
    granted_scopes text NOT NULL DEFAULT '[]',
    requested_audience text NOT NULL DEFAULT '[]',
    granted_audience text NOT NULL DEFAULT '[]',
    form text NOT NULL DEFAULT '',
    session text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    expires_at timestamptz
);
CREATE INDEX access_tokens_request_id_idx ON access_tokens (request_id);
CREATE INDEX access_tokens_client_subject_idx ON access_tokens (client_id, subject);
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    signature text PRIMARY KEY,
    request_id text NOT NULL,
    requested_at timestamptz NOT NULL,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject text NOT NULL DEFAULT '',
    scopes text NOT NULL DEFAULT '[]',
    granted_scopes text NOT NULL DEFAULT '[]',
    requested_audience text NOT NULL DEFAULT '[]',
    granted_audience text NOT NULL DEFAULT '[]',
    form text NOT NULL DEFAULT '',
    session text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    expires_at timestamptz,
    access_token_signature text NOT NULL DEFAULT ''
);
CREATE INDEX refresh_tokens_request_id_idx ON refresh_tokens (request_id);
CREATE INDEX refresh_tokens_client_subject_idx ON refresh_tokens (client_id, subject);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- JWT IDs already seen: client assertions (private_key_jwt) and RFC 7523 grants.
CREATE TABLE used_jtis (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX used_jtis_expires_at_idx ON used_jtis (expires_at);

CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    algorithm text NOT NULL,
    public_jwk bytea NOT NULL,
    sealed_private bytea NOT NULL,
    created_at timestamptz NOT NULL,
    retired_at timestamptz
);
CREATE INDEX signing_keys_created_at_idx ON signing_keys (created_at);

CREATE TABLE consents (
    subject text NOT NULL,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes text NOT NULL DEFAULT '[]',
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);

CREATE TABLE rfc7523_trusts (
    id text PRIMARY KEY,
    issuer text NOT NULL,
    subject text NOT NULL DEFAULT '',
    allow_any_subject boolean NOT NULL DEFAULT false,
    key_id text NOT NULL,
    public_jwk bytea NOT NULL,
    scopes text NOT NULL DEFAULT '[]',
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (issuer, subject, key_id)
);

CREATE TABLE structures (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE staff (
    id text PRIMARY KEY,
    email text NOT NULL UNIQUE,
    display_name text NOT NULL DEFAULT '',
    role text NOT NULL,
    structure_id text REFERENCES structures (id),
    platform boolean NOT NULL DEFAULT false,
    status text NOT NULL,
    password_hash text NOT NULL DEFAULT '',
    sealed_totp bytea,
    last_totp_step bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    last_sign_in_at timestamptz
);
CREATE INDEX staff_structure_id_idx ON staff (structure_id);

CREATE TABLE enrolments (
    token_hash bytea PRIMARY KEY,
    staff_id text NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    sealed_pending_totp bytea,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX enrolments_staff_id_idx ON enrolments (staff_id);

CREATE TABLE sign_in_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failure_key text NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_key_idx ON sign_in_failures (failure_key, failed_at);

CREATE TABLE web_sessions (
    id_hash bytea PRIMARY KEY,
    subject text NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
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
