package agents

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/store"
)

// Status is an agent's place in the registry.
type Status string

// The statuses an agent can have.
const (
	// Active agents are decided per request.
	Active Status = "active"
	// Pending agents registered and await an operator's approval; the Check
	// path refuses them.
	Pending Status = "pending"
	// Suspended agents are stopped: the Check path refuses them.
	Suspended Status = "suspended"
)

// Agent is one registered agent.
type Agent struct {
	// ClientID is the agent's OAuth client_id, and the agent name writ
	// tokens and decisions carry.
	ClientID string `json:"client_id"`
	Name     string `json:"name,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	Status   Status `json:"status"`
	// CreatedAt is set by Register when zero.
	CreatedAt time.Time `json:"created_at"`
	// LastSeen is zero until a Touch for the agent has been written.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// StatusBy, StatusReason and StatusAt describe the last status change
	// (approve, suspend, resume).
	StatusBy     string    `json:"status_by,omitempty"`
	StatusReason string    `json:"status_reason,omitempty"`
	StatusAt     time.Time `json:"status_at,omitzero"`
	// Epoch counts the agent's suspensions.
	Epoch int64 `json:"epoch"`
}

// Filter narrows List; zero fields match every agent.
type Filter struct {
	Status Status
	Tenant string
}

// Options shape a Store. The zero value is usable.
type Options struct {
	// Refresh is how often Run checks the database for status changes made
	// elsewhere. Default 1s.
	Refresh time.Duration
	// TouchInterval is how often Run writes last-seen times. Default 5s.
	TouchInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational logs; nothing is logged when nil.
	Logger *slog.Logger
}

// entry is what the Check path needs of an agent.
type entry struct {
	status Status
	epoch  int64
}

// Store is the agent registry. Its methods are safe for many goroutines.
type Store struct {
	db      *store.DB
	now     func() time.Time
	log     *slog.Logger
	refresh time.Duration
	touchIv time.Duration

	snap       atomic.Pointer[map[string]entry] // replaced whole, never mutated
	generation atomic.Uint64                    // bumped with every new snapshot
	mu         sync.Mutex                       // serialises snapshot rebuilds
	version    int64                            // agents_version of the snapshot; under mu

	seenMu sync.Mutex
	seen   map[string]time.Time // agents touched since the last flush
}

// Open returns a Store on db, with its snapshot loaded.
func Open(ctx context.Context, db *store.DB, o Options) (*Store, error) {
	if o.Refresh < 0 || o.TouchInterval < 0 {
		return nil, fmt.Errorf("%w: negative refresh or touch interval", ErrInvalid)
	}
	if o.Refresh == 0 {
		o.Refresh = time.Second
	}
	if o.TouchInterval == 0 {
		o.TouchInterval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, now: o.Now, log: o.Logger, refresh: o.Refresh, touchIv: o.TouchInterval, seen: map[string]time.Time{}}
	s.version = -1
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Status is the agent's status from the in-memory snapshot: known is false
// for an agent the registry does not hold. It never touches the database.
func (s *Store) Status(_ context.Context, agent string) (string, bool) {
	e, ok := (*s.snap.Load())[agent]
	return string(e.status), ok
}

// Epoch is the agent's suspension count from the in-memory snapshot; 0
// for an agent the registry does not hold.
func (s *Store) Epoch(_ context.Context, agent string) int64 {
	return (*s.snap.Load())[agent].epoch
}

// Generation changes whenever the snapshot Status reads is replaced; a
// cache of answers derived from agent statuses is stale once it moves.
func (s *Store) Generation() uint64 { return s.generation.Load() }

// Refresh reloads the snapshot when the database's status version moved
// since the last load: one single-row read when nothing changed.
func (s *Store) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM agents_version`).Scan(&v); err != nil {
		return fmt.Errorf("agents: read version: %w", err)
	}
	if v == s.version {
		return nil
	}
	return s.reloadLocked(ctx, v)
}

// reloadLocked rebuilds the snapshot. The caller holds s.mu.
func (s *Store) reloadLocked(ctx context.Context, version int64) error {
	rows, err := s.db.QueryContext(ctx, `SELECT client_id, status, epoch FROM agents`)
	if err != nil {
		return fmt.Errorf("agents: load statuses: %w", err)
	}
	defer rows.Close()
	m := map[string]entry{}
	for rows.Next() {
		var id, status string
		var e entry
		if err := rows.Scan(&id, &status, &e.epoch); err != nil {
			return fmt.Errorf("agents: load statuses: %w", err)
		}
		e.status = Status(status)
		m[id] = e
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("agents: load statuses: %w", err)
	}
	s.snap.Store(&m)
	s.version = version
	s.generation.Add(1)
	return nil
}

// change runs f in a transaction that also bumps the status version, then
// reloads the snapshot so this Store enforces the change at once.
func (s *Store) change(ctx context.Context, f func(tx *sql.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("agents: begin: %w", err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	var v int64
	if err := tx.QueryRowContext(ctx, `UPDATE agents_version SET version = version + 1 RETURNING version`).Scan(&v); err != nil {
		return fmt.Errorf("agents: bump version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("agents: commit: %w", err)
	}
	return s.reloadLocked(ctx, v)
}

// Register adds an agent. Status defaults to Active; CreatedAt to now.
func (s *Store) Register(ctx context.Context, a Agent) error {
	a, err := s.prepare(a)
	if err != nil {
		return err
	}
	return s.change(ctx, func(tx *sql.Tx) error { return insertAgent(ctx, tx, a) })
}

// prepare checks a and fills its defaults.
func (s *Store) prepare(a Agent) (Agent, error) {
	if a.ClientID == "" || strings.ContainsFunc(a.ClientID, isControl) {
		return a, fmt.Errorf("%w: client_id must be non-empty printable text", ErrInvalid)
	}
	if a.Status == "" {
		a.Status = Active
	}
	if !a.Status.valid() {
		return a, fmt.Errorf("%w: status %q", ErrInvalid, a.Status)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	return a, nil
}

func insertAgent(ctx context.Context, tx *sql.Tx, a Agent) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO agents (client_id, name, owner, tenant, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING`,
		a.ClientID, a.Name, a.Owner, a.Tenant, string(a.Status), a.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("agents: register %q: %w", a.ClientID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrExists, a.ClientID)
	}
	return nil
}

const agentColumns = `client_id, name, owner, tenant, status, created_at, last_seen, status_by, status_reason, status_at, epoch`

// Get returns one agent.
func (s *Store) Get(ctx context.Context, clientID string) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE client_id = ?`, clientID))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("%w: %q", ErrNotFound, clientID)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agents: read %q: %w", clientID, err)
	}
	return a, nil
}

// List returns the agents f matches, by tenant then client_id.
func (s *Store) List(ctx context.Context, f Filter) ([]Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents
		WHERE (? = '' OR status = ?) AND (? = '' OR tenant = ?) ORDER BY tenant, client_id`,
		string(f.Status), string(f.Status), f.Tenant, f.Tenant)
	if err != nil {
		return nil, fmt.Errorf("agents: list: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("agents: list: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("agents: list: %w", err)
	}
	return out, nil
}

// Approve moves a pending agent to active.
func (s *Store) Approve(ctx context.Context, clientID, by string) error {
	return s.transition(ctx, clientID, Pending, Active, by, "", false)
}

// Suspend stops an active or pending agent: from the next Check on (on this
// Store's replica; within one refresh elsewhere) its requests are refused.
// Suspending a suspended agent is ErrTransition.
func (s *Store) Suspend(ctx context.Context, clientID, by, reason string) error {
	return s.transition(ctx, clientID, "", Suspended, by, reason, true)
}

// Resume returns a suspended agent to active.
func (s *Store) Resume(ctx context.Context, clientID, by string) error {
	return s.transition(ctx, clientID, Suspended, Active, by, "", false)
}

// transition moves clientID from `from` ("" means any status but `to`) to
// `to`, recording who and why.
func (s *Store) transition(ctx context.Context, clientID string, from, to Status, by, reason string, bumpEpoch bool) error {
	return s.change(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM agents WHERE client_id = ?`, clientID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", ErrNotFound, clientID)
		}
		if err != nil {
			return fmt.Errorf("agents: read %q: %w", clientID, err)
		}
		if (from != "" && Status(cur) != from) || Status(cur) == to {
			return fmt.Errorf("%w: %q is %s", ErrTransition, clientID, cur)
		}
		epoch := 0
		if bumpEpoch {
			epoch = 1
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET status = ?, status_by = ?, status_reason = ?, status_at = ?, epoch = epoch + ?
			WHERE client_id = ?`, string(to), by, reason, s.now().UnixMilli(), epoch, clientID); err != nil {
			return fmt.Errorf("agents: update %q: %w", clientID, err)
		}
		return nil
	})
}

// Delete removes an agent. A deleted agent is unknown to the Check path,
// which then applies its unknown-agent rule. With allowed, the agent must
// have one of those statuses (else ErrTransition), checked in the same
// transaction: an agent's own withdrawal never races its suspension.
func (s *Store) Delete(ctx context.Context, clientID string, allowed ...Status) error {
	err := s.change(ctx, func(tx *sql.Tx) error {
		if err := requireStatus(ctx, tx, clientID, allowed); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE client_id = ?`, clientID)
		if err != nil {
			return fmt.Errorf("agents: delete %q: %w", clientID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, clientID)
		}
		return nil
	})
	if err == nil {
		s.seenMu.Lock()
		delete(s.seen, clientID)
		s.seenMu.Unlock()
	}
	return err
}

// Touch notes that the agent was seen now. It only updates memory; Flush
// (called by Run and Close) writes it. Agents the registry does not hold
// are ignored, so unregistered callers cannot grow the set.
func (s *Store) Touch(_ context.Context, clientID string) {
	if _, ok := (*s.snap.Load())[clientID]; !ok {
		return
	}
	now := s.now()
	s.seenMu.Lock()
	s.seen[clientID] = now
	s.seenMu.Unlock()
}

// Flush writes the last-seen times touched since the last flush, in one
// transaction. On failure they are kept for the next flush (a later
// Touch wins).
func (s *Store) Flush(ctx context.Context) error {
	s.seenMu.Lock()
	seen := s.seen
	s.seen = map[string]time.Time{}
	s.seenMu.Unlock()
	if len(seen) == 0 {
		return nil
	}
	err := s.writeSeen(ctx, seen)
	if err != nil {
		s.seenMu.Lock()
		for id, t := range seen {
			if _, newer := s.seen[id]; !newer {
				s.seen[id] = t
			}
		}
		s.seenMu.Unlock()
	}
	return err
}

func (s *Store) writeSeen(ctx context.Context, seen map[string]time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("agents: begin last-seen write: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `UPDATE agents SET last_seen = max(coalesce(last_seen, 0), ?) WHERE client_id = ?`)
	if err != nil {
		return fmt.Errorf("agents: last-seen write: %w", err)
	}
	defer st.Close()
	for id, t := range seen {
		if _, err := st.ExecContext(ctx, t.UnixMilli(), id); err != nil {
			return fmt.Errorf("agents: last-seen write: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("agents: commit last-seen write: %w", err)
	}
	return nil
}

// Run refreshes the snapshot every Options.Refresh and flushes last-seen
// times every Options.TouchInterval until ctx ends, then flushes once more.
// Failures are logged and retried at the next tick: the snapshot in memory
// stays in force meanwhile.
func (s *Store) Run(ctx context.Context) error {
	refresh := time.NewTicker(s.refresh)
	defer refresh.Stop()
	flush := time.NewTicker(s.touchIv)
	defer flush.Stop()
	return s.run(ctx, refresh.C, flush.C)
}

func (s *Store) run(ctx context.Context, refresh, flush <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return s.Flush(context.WithoutCancel(ctx))
		case <-refresh:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("agent statuses not refreshed; keeping the last ones", "error", err)
			}
		case <-flush:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("agent last-seen times not written; retrying", "error", err)
			}
		}
	}
}

type scanner interface{ Scan(...any) error }

func scanAgent(r scanner) (Agent, error) {
	var a Agent
	var status string
	var created int64
	var seen, at sql.NullInt64
	if err := r.Scan(&a.ClientID, &a.Name, &a.Owner, &a.Tenant, &status, &created, &seen, &a.StatusBy, &a.StatusReason, &at, &a.Epoch); err != nil {
		return Agent{}, err
	}
	a.Status = Status(status)
	a.CreatedAt = time.UnixMilli(created).UTC()
	if seen.Valid {
		a.LastSeen = time.UnixMilli(seen.Int64).UTC()
	}
	if at.Valid {
		a.StatusAt = time.UnixMilli(at.Int64).UTC()
	}
	return a, nil
}

// requireStatus fails with ErrTransition unless the agent's status is one
// of allowed (any status when allowed is empty); ErrNotFound for an agent
// the registry does not hold.
func requireStatus(ctx context.Context, tx *sql.Tx, clientID string, allowed []Status) error {
	if len(allowed) == 0 {
		return nil
	}
	var st string
	err := tx.QueryRowContext(ctx, `SELECT status FROM agents WHERE client_id = ?`, clientID).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %q", ErrNotFound, clientID)
	}
	if err != nil {
		return fmt.Errorf("agents: read %q: %w", clientID, err)
	}
	if !slices.Contains(allowed, Status(st)) {
		return fmt.Errorf("%w: %q is %s", ErrTransition, clientID, st)
	}
	return nil
}

func (st Status) valid() bool { return st == Active || st == Pending || st == Suspended }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
