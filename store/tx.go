package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// txKey is the context key under which BeginTX stores its transaction.
type txKey struct{}

// BeginTX starts a transaction and returns a context carrying it; every
// method called with that context runs inside it until Commit or Rollback.
// On SQLite the transaction holds the only writer connection: do not write
// with a context that lacks it before committing.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if txFrom(ctx) != nil {
		return nil, errors.New("begin transaction: already in one")
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return nil, fmt.Errorf("begin transaction: %w", tx.Error)
	}
	return context.WithValue(ctx, txKey{}, tx), nil
}

// Commit commits the transaction BeginTX put in ctx.
func (s *Store) Commit(ctx context.Context) error {
	tx := txFrom(ctx)
	if tx == nil {
		return errors.New("commit: no transaction in context")
	}
	if err := tx.Commit().Error; err != nil {
		return fmt.Errorf("commit: %w", s.translate(err))
	}
	return nil
}

// Rollback abandons the transaction BeginTX put in ctx.
func (s *Store) Rollback(ctx context.Context) error {
	tx := txFrom(ctx)
	if tx == nil {
		return errors.New("rollback: no transaction in context")
	}
	if err := tx.Rollback().Error; err != nil && !errors.Is(err, gorm.ErrInvalidTransaction) && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

func txFrom(ctx context.Context) *gorm.DB {
	tx, _ := ctx.Value(txKey{}).(*gorm.DB)
	return tx
}

// w returns the handle for writes: the context's transaction, else the
// writer pool.
func (s *Store) w(ctx context.Context) *gorm.DB {
	if tx := txFrom(ctx); tx != nil {
		return tx.WithContext(ctx)
	}
	return s.db.WithContext(ctx)
}

// r returns the handle for reads: the context's transaction (so a
// transaction sees its own writes), else the reader pool.
func (s *Store) r(ctx context.Context) *gorm.DB {
	if tx := txFrom(ctx); tx != nil {
		return tx.WithContext(ctx)
	}
	return s.rdb.WithContext(ctx)
}

// inTx runs fn in a transaction: a savepoint inside the context's
// transaction when there is one, else a new transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.w(ctx).Transaction(fn)
}

// forUpdate row-locks what a query reads on PostgreSQL (SQLite has a single
// writer, so a write transaction already excludes every other).
func (s *Store) forUpdate(tx *gorm.DB) *gorm.DB {
	if s.dialect == DialectPostgres {
		return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	return tx
}
