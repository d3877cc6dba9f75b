package mandate

import "errors"

// Sentinel errors every store returns (wrapped with context) instead of
// driver errors, so callers can test them with errors.Is.
var (
	// ErrNotFound: the record does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a record with the same unique key exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the record changed state under us (already used, expired, revoked).
	ErrConflict = errors.New("conflict")
)
