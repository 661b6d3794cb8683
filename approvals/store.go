package approvals

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/store"
)

// Defaults for Options.
const (
	DefaultTTL      = 10 * time.Minute
	DefaultInterval = 5 * time.Second
)

// idBytes is the randomness in an auth_req_id: 256 bits, 43 base64url
// characters.
const idBytes = 32

// Options configure a Store.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational logs; nothing is logged when nil.
	Logger *slog.Logger
	// Notifier tells approvers about each new request; none when nil.
	Notifier Notifier
	// DefaultTTL applies when a Requirement has no TTL; 10 minutes when zero.
	DefaultTTL time.Duration
	// Interval is the retry interval told to agents; 5 seconds when zero.
	Interval time.Duration
	// OnEvent receives every step of every request once it is committed.
	// It is called synchronously from Gate, Approve, Deny and Sweep, and
	// from notification goroutines: it must be quick and safe for
	// concurrent use.
	OnEvent func(Event)
}

// Store keeps approval requests in writ's database. It is safe for
// concurrent use, also by several processes sharing the database.
type Store struct {
	db       *store.DB
	now      func() time.Time
	log      *slog.Logger
	notifier Notifier
	ttl      time.Duration
	interval time.Duration
	onEvent  func(Event)

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// Open returns a Store over db, whose schema must include the approvals
// tables (store migration 2).
func Open(ctx context.Context, db *store.DB, opts Options) (*Store, error) {
	if opts.DefaultTTL < 0 || opts.Interval < 0 {
		return nil, fmt.Errorf("%w: negative default TTL or interval", ErrInvalidRequirement)
	}
	s := &Store{
		db:       db,
		now:      opts.Now,
		log:      opts.Logger,
		notifier: opts.Notifier,
		ttl:      opts.DefaultTTL,
		interval: opts.Interval,
		onEvent:  opts.OnEvent,
		closing:  make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('approval_requests', 'approval_uses')`).Scan(&n); err != nil {
		return nil, fmt.Errorf("approvals: inspect schema: %w", err)
	}
	if n != 2 {
		return nil, ErrNoSchema
	}
	return s, nil
}

// Close stops pending notifications (cancelling their contexts) and waits
// for them to return. Gate fails with ErrClosed afterwards; Close does not
// close the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Gate answers whether call may pass under req, in one transaction:
//
//   - an approved, unexpired request for the same fingerprint with uses
//     left: one use is taken atomically and the answer is Approved;
//   - otherwise the newest request for the fingerprint decides:
//     pending and unexpired → that Pending request (identical calls share it);
//     denied, within one TTL of the denial → Denied;
//     pending or approved past its expiry, or expired and not yet told →
//     Expired, once;
//   - in every other case (none, consumed, expired and told, a denial that
//     has run its course) a new Pending request is opened and approvers are
//     notified in the background.
func (s *Store) Gate(ctx context.Context, call Call, req Requirement) (Result, error) {
	if err := call.validate(); err != nil {
		return Result{}, err
	}
	req, err := s.normalize(req)
	if err != nil {
		return Result{}, err
	}
	if s.isClosed() {
		return Result{}, ErrClosed
	}
	now := s.now()
	fp := Fingerprint(call)

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Result{}, fmt.Errorf("approvals: begin: %w", err)
	}
	defer tx.Rollback()
	res, events, opened, err := s.gate(ctx, tx, call, fp, req, now)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(); err != nil {
		return Result{}, fmt.Errorf("approvals: commit: %w", err)
	}
	s.emit(events...)
	if opened != nil {
		s.notify(ctx, *opened)
	}
	return res, nil
}

func (s *Store) gate(ctx context.Context, tx *sql.Tx, call Call, fp string, req Requirement, now time.Time) (Result, []Event, *Request, error) {
	nowMS := now.UnixMilli()

	// 1. Use an approval, if one is there.
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM approval_requests
		WHERE fingerprint = ? AND status = 'approved' AND uses_left <> 0 AND expires_at > ?
		ORDER BY seq DESC LIMIT 1`, fp, nowMS).Scan(&id)
	switch {
	case err == nil:
		used, err := consume(ctx, tx, id, call.DecisionID, nowMS)
		if err != nil {
			return Result{}, nil, nil, err
		}
		if used {
			r, err := load(ctx, tx, id)
			if err != nil {
				return Result{}, nil, nil, err
			}
			ev := s.event(EventConsumed, r, now)
			ev.DecisionID, ev.UsesLeft = call.DecisionID, r.UsesLeft
			res := s.result(r, now)
			res.Status = Approved
			return res, []Event{ev}, nil, nil
		}
	case !errors.Is(err, sql.ErrNoRows):
		return Result{}, nil, nil, fmt.Errorf("approvals: find approval: %w", err)
	}

	// 2. Otherwise the newest request for this call decides.
	r, err := scanRequest(tx.QueryRowContext(ctx, selectRequest+` WHERE fingerprint = ? ORDER BY seq DESC LIMIT 1`, fp))
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Result{}, nil, nil, fmt.Errorf("approvals: find request: %w", err)
	default:
		live := r.ExpiresAt.After(now)
		switch {
		case r.stored == Pending && live:
			return s.result(r, now), nil, nil, nil
		case r.stored == Denied && live:
			return s.result(r, now), nil, nil, nil
		case (r.stored == Pending || r.stored == Approved) && !live:
			if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'expired', expiry_told = 1 WHERE id = ?`, r.ID); err != nil {
				return Result{}, nil, nil, fmt.Errorf("approvals: expire: %w", err)
			}
			r.stored, r.Status = Expired, Expired
			return s.result(r, now), []Event{s.event(EventExpired, r, now)}, nil, nil
		case r.stored == Expired && !r.expiryTold:
			if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET expiry_told = 1 WHERE id = ?`, r.ID); err != nil {
				return Result{}, nil, nil, fmt.Errorf("approvals: expire: %w", err)
			}
			return s.result(r, now), nil, nil, nil
		}
	}

	// 3. Open a new request.
	n, err := s.open(ctx, tx, call, fp, req, now)
	if err != nil {
		return Result{}, nil, nil, err
	}
	ev := s.event(EventOpened, n, now)
	ev.DecisionID = call.DecisionID
	return s.result(n, now), []Event{ev}, &n, nil
}

// consume takes one use of an approved request. The single conditional
// UPDATE is what makes single use exact: of any number of concurrent
// callers, only as many as there are uses see a row affected.
func consume(ctx context.Context, tx *sql.Tx, id, decisionID string, nowMS int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE approval_requests SET
			uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END,
			status    = CASE WHEN uses_left = 1 THEN 'consumed' ELSE status END
		WHERE id = ? AND status = 'approved' AND uses_left <> 0 AND expires_at > ?`, id, nowMS)
	if err != nil {
		return false, fmt.Errorf("approvals: consume: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("approvals: consume: %w", err)
	}
	if n != 1 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO approval_uses (request_id, decision_id, used_at) VALUES (?, ?, ?)`, id, decisionID, nowMS); err != nil {
		return false, fmt.Errorf("approvals: record use: %w", err)
	}
	return true, nil
}

func (s *Store) open(ctx context.Context, tx *sql.Tx, call Call, fp string, req Requirement, now time.Time) (Request, error) {
	id, err := newID()
	if err != nil {
		return Request{}, err
	}
	approvers := req.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	approversJSON, err := json.Marshal(approvers)
	if err != nil {
		return Request{}, fmt.Errorf("approvals: encode approvers: %w", err)
	}
	created := time.UnixMilli(now.UnixMilli())
	r := Request{
		ID: id, Fingerprint: fp, Call: call, BindingMessage: req.BindingMessage, Approvers: approvers,
		Status: Pending, stored: Pending, CreatedAt: created, ExpiresAt: created.Add(req.TTL),
		TTL: req.TTL, Window: req.Window, Uses: req.Uses, UsesLeft: req.Uses,
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO approval_requests
		(id, fingerprint, user_id, agent, tenant, resource, action, arguments_sha256, arguments, opened_by,
		 binding_message, approvers, status, created_at, expires_at, ttl_ms, window_ms, uses, uses_left)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)`,
		r.ID, fp, call.User, call.Agent, call.Tenant, call.Resource, call.Action, call.ArgumentsSHA256, call.Arguments, call.DecisionID,
		r.BindingMessage, string(approversJSON), r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli(),
		r.TTL.Milliseconds(), r.Window.Milliseconds(), r.Uses, r.UsesLeft)
	if err != nil {
		return Request{}, fmt.Errorf("approvals: open request: %w", err)
	}
	return r, nil
}

// Approve records approver's yes. The approval is usable until the
// request's expiry, or for Window from now when the requirement set one.
func (s *Store) Approve(ctx context.Context, id, approver string) error {
	return s.decide(ctx, id, approver, Approved)
}

// Deny records approver's no. The identical call is answered Denied for one
// TTL from now; after that a retry opens a new request.
func (s *Store) Deny(ctx context.Context, id, approver string) error {
	return s.decide(ctx, id, approver, Denied)
}

func (s *Store) decide(ctx context.Context, id, approver string, to Status) error {
	if approver == "" {
		return ErrApproverRequired
	}
	now := s.now()
	nowMS := now.UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("approvals: begin: %w", err)
	}
	defer tx.Rollback()
	r, err := load(ctx, tx, id)
	if err != nil {
		return err
	}
	if approver == r.Call.Agent {
		return ErrSelfApproval
	}
	if r.stored == Pending && !r.ExpiresAt.After(now) {
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'expired' WHERE id = ? AND status = 'pending'`, id); err != nil {
			return fmt.Errorf("approvals: expire: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("approvals: commit: %w", err)
		}
		r.stored, r.Status = Expired, Expired
		s.emit(s.event(EventExpired, r, now))
		return fmt.Errorf("%w: expired", ErrNotPending)
	}
	if r.stored != Pending {
		return fmt.Errorf("%w: %s", ErrNotPending, r.stored)
	}
	expires := r.ExpiresAt
	switch {
	case to == Denied:
		expires = now.Add(r.TTL)
	case r.Window > 0:
		expires = now.Add(r.Window)
	}
	res, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = ?, approver = ?, decided_at = ?, expires_at = ?
		WHERE id = ? AND status = 'pending' AND expires_at > ?`,
		string(to), approver, nowMS, expires.UnixMilli(), id, nowMS)
	if err != nil {
		return fmt.Errorf("approvals: decide: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: changed concurrently", ErrNotPending)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("approvals: commit: %w", err)
	}
	r.stored, r.Status, r.Approver, r.DecidedAt, r.ExpiresAt = to, to, approver, time.UnixMilli(nowMS), time.UnixMilli(expires.UnixMilli())
	kind := EventApproved
	if to == Denied {
		kind = EventDenied
	}
	ev := s.event(kind, r, now)
	ev.Approver = approver
	s.emit(ev)
	return nil
}

// CancelAgent denies every pending request of agent, and withdraws every
// approved one it has not used up, in one transaction: the kill switch's
// part in approvals. by names who suspended the agent; the requests record
// it as their approver. Each cancelled request is reported as denied and
// stays denied for its TTL. It returns the requests cancelled.
func (s *Store) CancelAgent(ctx context.Context, agent, by string) ([]Request, error) {
	if by == "" {
		return nil, ErrApproverRequired
	}
	now := s.now()
	nowMS := now.UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("approvals: begin: %w", err)
	}
	defer tx.Rollback()
	open, err := query(ctx, tx, selectRequest+` WHERE agent = ? AND status IN ('pending', 'approved') AND expires_at > ? ORDER BY seq`, agent, nowMS)
	if err != nil {
		return nil, err
	}
	for i, r := range open {
		expires := now.Add(r.TTL).UnixMilli()
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'denied', approver = ?, decided_at = ?, expires_at = ?
			WHERE id = ? AND status IN ('pending', 'approved')`, by, nowMS, expires, r.ID); err != nil {
			return nil, fmt.Errorf("approvals: cancel: %w", err)
		}
		open[i].stored, open[i].Status, open[i].Approver = Denied, Denied, by
		open[i].DecidedAt, open[i].ExpiresAt = time.UnixMilli(nowMS), time.UnixMilli(expires)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("approvals: commit: %w", err)
	}
	for _, r := range open {
		ev := s.event(EventDenied, r, now)
		ev.Approver = by
		s.emit(ev)
	}
	return open, nil
}

// Sweep marks every pending or approved request past its expiry as
// expired and reports each, so expiry reaches the evidence log without a
// retry. It returns how many it marked. Run it periodically.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("approvals: begin: %w", err)
	}
	defer tx.Rollback()
	due, err := query(ctx, tx, selectRequest+` WHERE status IN ('pending', 'approved') AND expires_at <= ? ORDER BY seq`, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'expired'
		WHERE status IN ('pending', 'approved') AND expires_at <= ?`, now.UnixMilli()); err != nil {
		return 0, fmt.Errorf("approvals: sweep: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("approvals: commit: %w", err)
	}
	for _, r := range due {
		r.stored, r.Status = Expired, Expired
		s.emit(s.event(EventExpired, r, now))
	}
	return len(due), nil
}

// Get returns the request with the given id, with the decisions that used
// it, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Request, error) {
	r, err := load(ctx, s.db, id)
	if err != nil {
		return Request{}, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT decision_id FROM approval_uses WHERE request_id = ? ORDER BY seq`, id)
	if err != nil {
		return Request{}, fmt.Errorf("approvals: read uses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return Request{}, fmt.Errorf("approvals: read uses: %w", err)
		}
		r.ConsumedBy = append(r.ConsumedBy, d)
	}
	if err := rows.Err(); err != nil {
		return Request{}, fmt.Errorf("approvals: read uses: %w", err)
	}
	return s.effective(r), nil
}

// List returns requests matching f, newest first. Status matches the
// effective status, so Filter{Status: Expired} includes unswept ones.
func (s *Store) List(ctx context.Context, f Filter) ([]Request, error) {
	var where []string
	var args []any
	nowMS := s.now().UnixMilli()
	switch f.Status {
	case "":
	case Pending, Approved:
		where, args = append(where, "status = ? AND expires_at > ?"), append(args, string(f.Status), nowMS)
	case Expired:
		where, args = append(where, "(status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= ?))"), append(args, nowMS)
	case Denied, Consumed:
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	default:
		return nil, fmt.Errorf("approvals: unknown status %q", f.Status)
	}
	for col, v := range map[string]string{"user_id": f.User, "agent": f.Agent, "tenant": f.Tenant} {
		if v != "" {
			where, args = append(where, col+" = ?"), append(args, v)
		}
	}
	q := selectRequest
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit)
	rs, err := query(ctx, s.db, q, args...)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		rs[i] = s.effective(rs[i])
	}
	return rs, nil
}

func (s *Store) normalize(req Requirement) (Requirement, error) {
	switch {
	case req.TTL < 0, req.Window < 0:
		return req, fmt.Errorf("%w: negative TTL or window", ErrInvalidRequirement)
	case req.Uses < UnlimitedUses:
		return req, fmt.Errorf("%w: uses %d", ErrInvalidRequirement, req.Uses)
	case req.Uses == UnlimitedUses && req.Window == 0:
		return req, fmt.Errorf("%w: unlimited uses need a window", ErrInvalidRequirement)
	}
	if req.TTL == 0 {
		req.TTL = s.ttl
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	return req, nil
}

func (s *Store) effective(r Request) Request {
	if (r.stored == Pending || r.stored == Approved) && !r.ExpiresAt.After(s.now()) {
		r.Status = Expired
	}
	return r
}

func (s *Store) result(r Request, now time.Time) Result {
	res := Result{
		Status: r.stored, ID: r.ID, Interval: s.interval, BindingMessage: r.BindingMessage,
		Approver: r.Approver, RequestedAt: r.CreatedAt, DecidedAt: r.DecidedAt, UsesLeft: r.UsesLeft,
	}
	if r.stored == Pending {
		res.ExpiresIn = r.ExpiresAt.Sub(time.UnixMilli(now.UnixMilli())) // stored times are milliseconds
	}
	return res
}

func (s *Store) event(kind EventKind, r Request, now time.Time) Event {
	return Event{Kind: kind, Time: now, ID: r.ID, Fingerprint: r.Fingerprint, Call: r.Call}
}

func (s *Store) emit(events ...Event) {
	for _, ev := range events {
		s.log.Debug("approval event", "event", string(ev.Kind), "approval_id", ev.ID, "approver", ev.Approver, "decision_id", ev.DecisionID)
		if s.onEvent != nil {
			s.onEvent(ev)
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// notify tells the notifier about r without blocking the caller. The
// delivery keeps the caller's context values but not its cancellation, and
// is cancelled by Close.
func (s *Store) notify(ctx context.Context, r Request) {
	if s.notifier == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Go(func() {
		select {
		case <-s.closing:
			cancel()
		case <-nctx.Done():
		}
	})
	s.wg.Go(func() {
		defer cancel()
		err := s.notifier.Notify(nctx, notificationOf(r))
		now := s.now()
		if err != nil {
			s.log.Warn("approval notification failed", "approval_id", r.ID, "error", err)
			ev := s.event(EventNotifyFailed, r, now)
			ev.Err = err.Error()
			s.emit(ev)
			return
		}
		s.emit(s.event(EventNotified, r, now))
	})
}

// newID returns an auth_req_id: 256 random bits, base64url. An id that
// would start with '-' is drawn again, so that command lines never read one
// as a flag (this costs a fraction of one bit of the 256).
func newID() (string, error) {
	b := make([]byte, idBytes)
	for {
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("approvals: random id: %w", err)
		}
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id, nil
		}
	}
}

const selectRequest = `SELECT id, fingerprint, user_id, agent, tenant, resource, action, arguments_sha256, arguments, opened_by,
	binding_message, approvers, status, approver, created_at, decided_at, expires_at, ttl_ms, window_ms,
	uses, uses_left, expiry_told FROM approval_requests`

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface{ Scan(dest ...any) error }

func scanRequest(row scanner) (Request, error) {
	var (
		r                          Request
		approvers, status          string
		created, expires, ttl, win int64
		decided                    sql.NullInt64
	)
	err := row.Scan(&r.ID, &r.Fingerprint, &r.Call.User, &r.Call.Agent, &r.Call.Tenant, &r.Call.Resource,
		&r.Call.Action, &r.Call.ArgumentsSHA256, &r.Call.Arguments, &r.Call.DecisionID, &r.BindingMessage, &approvers, &status,
		&r.Approver, &created, &decided, &expires, &ttl, &win, &r.Uses, &r.UsesLeft, &r.expiryTold)
	if err != nil {
		return Request{}, err
	}
	if err := json.Unmarshal([]byte(approvers), &r.Approvers); err != nil {
		return Request{}, fmt.Errorf("approvals: decode approvers: %w", err)
	}
	r.stored = Status(status)
	r.Status = r.stored
	r.CreatedAt, r.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	if decided.Valid {
		r.DecidedAt = time.UnixMilli(decided.Int64)
	}
	r.TTL, r.Window = time.Duration(ttl)*time.Millisecond, time.Duration(win)*time.Millisecond
	return r, nil
}

func load(ctx context.Context, q queryer, id string) (Request, error) {
	r, err := scanRequest(q.QueryRowContext(ctx, selectRequest+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("approvals: read request: %w", err)
	}
	return r, nil
}

func query(ctx context.Context, q queryer, sqlText string, args ...any) ([]Request, error) {
	rows, err := q.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("approvals: query: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("approvals: query: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("approvals: query: %w", err)
	}
	return out, nil
}
