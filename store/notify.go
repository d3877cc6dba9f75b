package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/mandated/mandated/authz"
	"github.com/mandated/mandated/store/pgbus"
)

// Bus is a revocation bus with a lifecycle: run it (go bus.Run(ctx)) for as
// long as the process serves, and Close it on shutdown.
type Bus interface {
	authz.RevocationBus
	// Run delivers other replicas' revocations until ctx ends or Close is
	// called; it returns nil then.
	Run(ctx context.Context) error
	// Close stops Run and waits for it.
	Close() error
}

// RevocationBus returns the bus that carries revocations to every replica
// sharing this store: on PostgreSQL a LISTEN/NOTIFY bus (see package pgbus:
// subscribers also receive pgbus.FlushAll, "*", whenever it (re)connects,
// and must then drop every cached entry); on SQLite, which only one process
// uses, an in-process authz.LocalBus.
func (s *Store) RevocationBus(ctx context.Context) (Bus, error) {
	if s.dialect != DialectPostgres {
		return &localBus{LocalBus: authz.NewLocalBus(), stop: make(chan struct{})}, nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("revocation bus: %w", err)
	}
	return pgbus.New(ctx, s.dsn, sqlDB, pgbus.Options{Logger: s.log})
}

// localBus gives authz.LocalBus the Bus lifecycle; it has nothing to run.
type localBus struct {
	*authz.LocalBus
	stop chan struct{}
	once sync.Once
}

func (b *localBus) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-b.stop:
	}
	return nil
}

func (b *localBus) Close() error {
	b.once.Do(func() { close(b.stop) })
	return nil
}
