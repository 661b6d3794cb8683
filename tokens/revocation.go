package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/store"
)

// RevocationOptions configure Revocations. The zero value is usable.
type RevocationOptions struct {
	// Refresh is how often Run reads revocations other replicas wrote.
	// Default 1s.
	Refresh time.Duration
	// Resync is how often Run reloads every live revocation and purges
	// expired ones from memory and the database. Default 1m.
	Resync time.Duration
	// Skew is how far back each refresh looks before the newest revocation
	// it has seen, so that a replica whose clock lags still has its
	// revocations read. Default 10s.
	Skew time.Duration
	// Keep is how long a revocation stays after the token's exp, covering
	// verifiers' leeway. Default 1m.
	Keep time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives refresh failures; nothing is logged when nil.
	Logger *slog.Logger
}

// Revocations is the set of revoked writ tokens (RFC 7009), by jti, shared
// by every replica through the revoked_tokens table. Revoked answers from
// memory; Run keeps memory in step with the database.
type Revocations struct {
	db  *store.DB
	opt RevocationOptions

	set atomic.Pointer[map[string]int64] // jti → exp (unix s); replaced whole

	mu    sync.Mutex // serialises writers of set and since
	since int64      // newest revoked_at (unix ms) read so far
}

// OpenRevocations returns the revocations stored in db, loaded.
func OpenRevocations(ctx context.Context, db *store.DB, o RevocationOptions) (*Revocations, error) {
	if db == nil {
		return nil, errors.New("tokens: OpenRevocations needs a database")
	}
	if o.Refresh < 0 || o.Resync < 0 || o.Skew < 0 || o.Keep < 0 {
		return nil, errors.New("tokens: revocation options must not be negative")
	}
	if o.Refresh == 0 {
		o.Refresh = time.Second
	}
	if o.Resync == 0 {
		o.Resync = time.Minute
	}
	if o.Skew == 0 {
		o.Skew = 10 * time.Second
	}
	if o.Keep == 0 {
		o.Keep = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{db: db, opt: o}
	empty := map[string]int64{}
	r.set.Store(&empty)
	if err := r.Resync(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Revoked reports whether the token with this jti was revoked. It reads
// memory only and is safe on the Check path.
func (r *Revocations) Revoked(jti string) bool {
	if jti == "" {
		return false
	}
	_, ok := (*r.set.Load())[jti]
	return ok
}

// Revoke records that the token jti, issued to clientID and expiring at
// exp, is revoked. Revoking a revoked token is not an error. This replica
// refuses the token at once; the others within one Refresh.
func (r *Revocations) Revoke(ctx context.Context, jti, clientID string, exp time.Time) error {
	if jti == "" {
		return fmt.Errorf("%w: empty jti", ErrRevocation)
	}
	now := r.opt.Now()
	if _, err := r.db.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING`, jti, clientID, exp.Unix(), now.UnixMilli()); err != nil {
		return fmt.Errorf("%w: %w", ErrRevocation, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.merge(map[string]int64{jti: exp.Unix()}, false)
	return nil
}

// Refresh reads the revocations written since the last read (with Skew of
// overlap). It is one indexed query.
func (r *Revocations) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.since - r.opt.Skew.Milliseconds()
	found, newest, err := r.load(ctx, `SELECT jti, expires_at, revoked_at FROM revoked_tokens WHERE revoked_at >= ?`, from)
	if err != nil {
		return err
	}
	r.since = max(r.since, newest)
	r.merge(found, false)
	return nil
}

// Resync deletes revocations of tokens long expired, then reloads every
// other one, replacing memory.
func (r *Revocations) Resync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opt.Now()
	cutoff := now.Add(-r.opt.Keep).Unix()
	if _, err := r.db.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE expires_at < ?`, cutoff); err != nil {
		return fmt.Errorf("%w: purge: %w", ErrRevocation, err)
	}
	found, newest, err := r.load(ctx, `SELECT jti, expires_at, revoked_at FROM revoked_tokens WHERE expires_at >= ?`, cutoff)
	if err != nil {
		return err
	}
	r.since = max(r.since, newest)
	r.merge(found, true)
	return nil
}

// load runs q and returns its rows and the newest revoked_at among them.
func (r *Revocations) load(ctx context.Context, q string, arg int64) (map[string]int64, int64, error) {
	rows, err := r.db.QueryContext(ctx, q, arg)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: load: %w", ErrRevocation, err)
	}
	defer rows.Close()
	found := map[string]int64{}
	var newest int64
	for rows.Next() {
		var jti string
		var exp, at int64
		if err := rows.Scan(&jti, &exp, &at); err != nil {
			return nil, 0, fmt.Errorf("%w: load: %w", ErrRevocation, err)
		}
		found[jti] = exp
		newest = max(newest, at)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("%w: load: %w", ErrRevocation, err)
	}
	return found, newest, nil
}

// merge publishes a new set: found added to the current one, or replacing
// it. The caller holds r.mu.
func (r *Revocations) merge(found map[string]int64, replace bool) {
	cur := *r.set.Load()
	if !replace {
		fresh := false
		for jti := range found {
			if _, ok := cur[jti]; !ok {
				fresh = true
				break
			}
		}
		if !fresh {
			return
		}
		next := maps.Clone(cur)
		maps.Copy(next, found)
		found = next
	}
	r.set.Store(&found)
}

// Run refreshes every Refresh and resyncs every Resync until ctx ends.
// Failures are logged and retried: the revocations in memory stay in
// force meanwhile.
func (r *Revocations) Run(ctx context.Context) error {
	refresh := time.NewTicker(r.opt.Refresh)
	defer refresh.Stop()
	resync := time.NewTicker(r.opt.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				r.opt.Logger.Warn("token revocations not refreshed; keeping the last ones", "error", err)
			}
		case <-resync.C:
			if err := r.Resync(ctx); err != nil && ctx.Err() == nil {
				r.opt.Logger.Warn("token revocations not resynchronised; keeping the last ones", "error", err)
			}
		}
	}
}
