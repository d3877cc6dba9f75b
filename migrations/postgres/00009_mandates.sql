-- Mandates (issue 5): a holder's recorded consent for a delegate to act on
-- their mailbox, each structure's mandate policy, and pending RFC 8628
-- device authorizations. Times are timestamptz (UTC); scopes and exclusions
-- are space-joined in text ('' for none); durations are bigint nanoseconds;
-- a time that is not set yet (a session's window before approval, a lease,
-- a decision) is NULL.

-- +goose Up
CREATE TABLE mandates (
    id text COLLATE "C" PRIMARY KEY, -- byte order, as on SQLite: the list cursor compares ids
    kind text NOT NULL CHECK (kind IN ('session', 'delegation')),
    structure_id text NOT NULL REFERENCES structures (id),
    holder_id text NOT NULL REFERENCES holders (id) ON DELETE CASCADE,
    mailbox text NOT NULL,
    delegate_id text NOT NULL REFERENCES staff (id),
    -- NULL when the mandate names no client, or its client was deleted
    -- (the mandate stays: it is the holder's record of consent).
    client_id text REFERENCES clients (id) ON DELETE SET NULL,
    scopes text NOT NULL DEFAULT '',
    exclusions text NOT NULL DEFAULT '',
    purpose text NOT NULL DEFAULT '',
    purpose_category text NOT NULL DEFAULT '',
    presence text NOT NULL CHECK (presence IN ('required', 'relaxed')),
    duration_ns bigint NOT NULL DEFAULT 0,
    not_before timestamptz,
    not_after timestamptz,
    answer_by timestamptz,
    state text NOT NULL CHECK (state IN ('requested', 'approved', 'refused', 'expired_unanswered', 'active', 'ended')),
    end_reason text NOT NULL DEFAULT '',
    ended_by text NOT NULL DEFAULT '',
    grant_id text NOT NULL DEFAULT '',
    consent_version text NOT NULL DEFAULT '',
    consent_hash text NOT NULL DEFAULT '',
    -- the receipt's canonical JSON as approved (its SHA-256 is consent_hash);
    -- NULL until approval.
    consent_receipt bytea,
    lease_until timestamptz,
    created_at timestamptz NOT NULL,
    decided_at timestamptz,
    activated_at timestamptz,
    ended_at timestamptz,
    version integer NOT NULL CHECK (version >= 1)
);
-- Lists, newest first (created_at, id descending), per holder, delegate,
-- structure, or all.
CREATE INDEX mandates_holder_idx ON mandates (holder_id, created_at, id);
CREATE INDEX mandates_delegate_idx ON mandates (delegate_id, created_at, id);
CREATE INDEX mandates_structure_idx ON mandates (structure_id, created_at, id);
CREATE INDEX mandates_created_idx ON mandates (created_at, id);
CREATE INDEX mandates_client_idx ON mandates (client_id);
-- The sweep: unanswered requests, closed windows, lapsed session leases.
CREATE INDEX mandates_answer_by_idx ON mandates (state, answer_by);
CREATE INDEX mandates_not_after_idx ON mandates (state, not_after);
-- lease_until is deliberately not indexed: a heartbeat changes only that
-- column, so on PostgreSQL it stays a HOT update that touches no index. The
-- sweep finds lapsed leases among the live mandates through (state, not_after).

-- One row per structure whose admin set a policy (else DefaultPolicy).
CREATE TABLE mandate_policies (
    structure_id text PRIMARY KEY REFERENCES structures (id) ON DELETE CASCADE,
    allowed_scopes text NOT NULL DEFAULT '',
    max_session_duration_ns bigint NOT NULL,
    max_delegation_duration_ns bigint NOT NULL,
    allow_relaxed_presence boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL DEFAULT ''
);

-- Pending RFC 8628 device authorizations, keyed by HMAC signatures of the
-- device code and the user code (never the codes themselves).
CREATE TABLE device_authorizations (
    device_code_signature text PRIMARY KEY,
    user_code_signature text NOT NULL UNIQUE,
    mandate_id text NOT NULL REFERENCES mandates (id) ON DELETE CASCADE,
    client_id text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    interval_ns bigint NOT NULL,
    last_polled_at timestamptz
);
CREATE INDEX device_authorizations_mandate_idx ON device_authorizations (mandate_id);
CREATE INDEX device_authorizations_client_idx ON device_authorizations (client_id);
CREATE INDEX device_authorizations_expires_at_idx ON device_authorizations (expires_at);

-- +goose Down
DROP TABLE device_authorizations;
DROP TABLE mandate_policies;
DROP TABLE mandates;
