package authz

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/ory/fosite"

	"github.com/mandated/mandated/mandate"
)

// cachedStorage is the Storage fosite sees. It serves clients from memory
// and announces every revocation (explicit /revoke, refresh rotation,
// refresh-token or code reuse) on the RevocationBus; inside a transaction the
// announcement waits for Commit, so nothing is announced that did not happen.
//
// Access tokens enter the token cache on their first introspection, not at
// issuance: most issued tokens are never introspected here (resource servers
// verify the JWT against the JWKS), and caching every one would hold about
// 1 KB per live token — hundreds of megabytes at thousands of tokens per
// second. The first introspection of a token costs one SELECT; the following
// ones answer from memory.
type cachedStorage struct {
	Storage
	tokens  *tokenCache
	clients *clientCache
	bus     RevocationBus
	clock   mandate.Clock
	log     *slog.Logger
}

type txKey struct{}

// txEffects are what a transaction will announce once committed.
type txEffects struct {
	mu      sync.Mutex
	revoked []string
}

func effectsOf(ctx context.Context) *txEffects {
	e, _ := ctx.Value(txKey{}).(*txEffects)
	return e
}

// onRevocation is what a subscriber does with a bus message.
func (s *cachedStorage) onRevocation(msg string) {
	if msg == FlushAll {
		s.clients.flush()
		s.tokens.flush()
		return
	}
	if id, ok := strings.CutPrefix(msg, clientMessagePrefix); ok {
		s.clients.evict(id)
		s.tokens.evictClient(id)
		return
	}
	s.tokens.evictRequest(msg)
}

func (s *cachedStorage) BeginTX(ctx context.Context) (context.Context, error) {
	ctx, err := s.Storage.BeginTX(ctx)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, txKey{}, &txEffects{}), nil
}

func (s *cachedStorage) Commit(ctx context.Context) error {
	if err := s.Storage.Commit(ctx); err != nil {
		return err
	}
	if e := effectsOf(ctx); e != nil {
		e.mu.Lock()
		revoked := e.revoked
		e.revoked = nil
		e.mu.Unlock()
		s.publish(ctx, revoked...)
	}
	return nil
}

func (s *cachedStorage) publish(ctx context.Context, ids ...string) {
	if len(ids) == 0 {
		return
	}
	if err := s.bus.Publish(ctx, ids...); err != nil {
		// The local caches were not told either: evict here so this replica
		// at least never answers from a stale entry.
		s.log.ErrorContext(ctx, "publish revocation", "err", err, "count", len(ids))
		for _, id := range ids {
			s.onRevocation(id)
		}
	}
}

func (s *cachedStorage) revoked(ctx context.Context, requestID string) {
	if e := effectsOf(ctx); e != nil {
		e.mu.Lock()
		e.revoked = append(e.revoked, requestID)
		e.mu.Unlock()
		return
	}
	s.publish(ctx, requestID)
}

func (s *cachedStorage) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	s.tokens.evictSig(sig)
	return s.Storage.DeleteAccessTokenSession(ctx, sig)
}

func (s *cachedStorage) RevokeAccessToken(ctx context.Context, requestID string) error {
	err := s.Storage.RevokeAccessToken(ctx, requestID)
	s.revoked(ctx, requestID)
	return err
}

func (s *cachedStorage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	err := s.Storage.RevokeRefreshToken(ctx, requestID)
	s.revoked(ctx, requestID)
	return err
}

func (s *cachedStorage) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	err := s.Storage.RotateRefreshToken(ctx, requestID, sig)
	s.revoked(ctx, requestID)
	return err
}

// GetClient answers from the client cache; unknown clients are not cached
// (a client registered on another replica must become visible at once).
func (s *cachedStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	now := s.clock.Now()
	if c, ok := s.clients.get(id, now); ok {
		return c, nil
	}
	gen := s.clients.generation()
	fc, err := s.Storage.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	c, ok := fc.(*Client)
	if !ok {
		return nil, errors.New("storage returned a client that is not *authz.Client")
	}
	s.clients.put(c, now, gen)
	return c, nil
}
