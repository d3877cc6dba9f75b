-- Audit log (package audit). Leaves, tree hashes and checkpoints are
-- append-only: triggers reject UPDATE, DELETE and TRUNCATE. The tree head
-- row holds the tree size, which may only grow. Person keys and readable
-- fields are erasable (right to erasure, retention).

-- +goose Up
CREATE TABLE audit_tree_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO audit_tree_head (id, size) VALUES (1, 0);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL DEFAULT '', -- in clear only when the actor is not a person
    structure TEXT NOT NULL DEFAULT '',
    mandate_id TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    leaf BYTEA NOT NULL
);
CREATE INDEX audit_events_time_idx ON audit_events (time);
CREATE INDEX audit_events_structure_idx ON audit_events (structure, seq);
CREATE INDEX audit_events_mandate_idx ON audit_events (mandate_id, seq);
CREATE INDEX audit_events_client_idx ON audit_events (client_id, seq);

CREATE TABLE audit_hashes (
    idx BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_signer_keys (
    name TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_person_keys (
    person TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_readable (
    seq BIGINT NOT NULL,
    person TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '', -- fields of the person in the event: ',actor_id,holder,'
    sealed BYTEA NOT NULL,
    PRIMARY KEY (seq, person)
);
CREATE INDEX audit_readable_person_idx ON audit_readable (person, seq);

-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION audit_tree_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.size < OLD.size OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'audit tree size only grows' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_append_only BEFORE UPDATE OR DELETE ON audit_hashes
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_hashes_no_truncate BEFORE TRUNCATE ON audit_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE OR DELETE ON audit_tree_head
    FOR EACH ROW EXECUTE FUNCTION audit_tree_head_grows();
CREATE TRIGGER audit_tree_head_no_truncate BEFORE TRUNCATE ON audit_tree_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- +goose Down
DROP TABLE audit_readable;
DROP TABLE audit_person_keys;
DROP TABLE audit_signer_keys;
DROP TABLE audit_checkpoints;
DROP TABLE audit_hashes;
DROP TABLE audit_events;
DROP TABLE audit_tree_head;
DROP FUNCTION audit_tree_head_grows();
DROP FUNCTION audit_append_only();
