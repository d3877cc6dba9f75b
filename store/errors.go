package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mandated/mandated/mandate"
	"github.com/ory/fosite"
	"gorm.io/gorm"
)

// translate maps driver errors to the sentinels callers test with errors.Is:
// unique violations to mandate.ErrAlreadyExists, missing rows to
// mandate.ErrNotFound, foreign-key violations (a referenced record is
// missing) to mandate.ErrNotFound, and PostgreSQL serialization failures and
// deadlocks to fosite.ErrSerializationFailure.
func (s *Store) translate(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return mandate.ErrAlreadyExists
	case errors.Is(err, gorm.ErrRecordNotFound):
		return mandate.ErrNotFound
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return fmt.Errorf("referenced record: %w", mandate.ErrNotFound)
	case errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01"):
		return fmt.Errorf("%w: %s", fosite.ErrSerializationFailure, pgErr.Message)
	}
	return err
}

// wrap translates err and prefixes it with what failed.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, s.translate(err))...)
}

// notFound is the error for a missing record.
func notFound(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, mandate.ErrNotFound)...)
}
