-- Audit log (package audit). Leaves, tree hashes and checkpoints are
-- append-only: triggers reject UPDATE and DELETE. The tree head row holds
-- the tree size, which may only grow. Person keys and readable fields are
-- erasable (right to erasure, retention).

-- +goose Up
CREATE TABLE audit_tree_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
);
INSERT INTO audit_tree_head (id, size) VALUES (1, 0);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    time DATETIME NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL DEFAULT '', -- in clear only when the actor is not a person
    structure TEXT NOT NULL DEFAULT '',
    mandate_id TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    leaf BLOB NOT NULL
);
CREATE INDEX audit_events_time_idx ON audit_events (time);
CREATE INDEX audit_events_structure_idx ON audit_events (structure, seq);
CREATE INDEX audit_events_mandate_idx ON audit_events (mandate_id, seq);
CREATE INDEX audit_events_client_idx ON audit_events (client_id, seq);

CREATE TABLE audit_hashes (
    idx INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    created_at DATETIME NOT NULL
);

CREATE TABLE audit_signer_keys (
    name TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_at DATETIME NOT NULL
);

CREATE TABLE audit_person_keys (
    person TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    created_at DATETIME NOT NULL
);

CREATE TABLE audit_readable (
    seq INTEGER NOT NULL,
    person TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '', -- fields of the person in the event: ',actor_id,holder,'
    sealed BLOB NOT NULL,
    PRIMARY KEY (seq, person)
);
CREATE INDEX audit_readable_person_idx ON audit_readable (person, seq);

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit_hashes is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE ON audit_tree_head
WHEN NEW.size < OLD.size OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'audit tree size only grows'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_tree_head_no_delete BEFORE DELETE ON audit_tree_head
BEGIN SELECT RAISE(ABORT, 'audit_tree_head is permanent'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_readable;
DROP TABLE audit_person_keys;
DROP TABLE audit_signer_keys;
DROP TABLE audit_checkpoints;
DROP TABLE audit_hashes;
DROP TABLE audit_events;
DROP TABLE audit_tree_head;
