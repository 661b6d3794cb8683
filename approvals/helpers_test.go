package approvals_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/store"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// events records every Event.
type events struct {
	mu  sync.Mutex
	all []approvals.Event
	ch  chan approvals.Event // every event, for tests that wait on one
}

func (e *events) On(ev approvals.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
	select {
	case e.ch <- ev:
	default:
	}
}

// Await blocks until an event of kind arrives.
func (e *events) Await(kind approvals.EventKind) approvals.Event {
	for ev := range e.ch {
		if ev.Kind == kind {
			return ev
		}
	}
	panic("unreachable")
}

func (e *events) Kinds(id string) []approvals.EventKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []approvals.EventKind
	for _, ev := range e.all {
		if ev.ID == id {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func (e *events) Of(kind approvals.EventKind) []approvals.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []approvals.Event
	for _, ev := range e.all {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// fixture is a Store over a fresh database with a clock and event recorder.
type fixture struct {
	dir    string
	db     *store.DB
	s      *approvals.Store
	clock  *clock
	events *events
}

func newFixture(t *testing.T, opts approvals.Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clock: newClock(), events: &events{ch: make(chan approvals.Event, 1024)}}
	f.open(t, opts)
	return f
}

func (f *fixture) open(t *testing.T, opts approvals.Options) { f.openTB(t, opts) }

func (f *fixture) openTB(t testing.TB, opts approvals.Options) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Now = f.clock.Now
	opts.OnEvent = f.events.On
	s, err := approvals.Open(context.Background(), db, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	f.db, f.s = db, s
	t.Cleanup(func() { f.close() })
}

func (f *fixture) close() {
	if f.s != nil {
		f.s.Close()
		f.db.Close()
		f.s, f.db = nil, nil
	}
}

func (f *fixture) gate(t *testing.T, c approvals.Call, r approvals.Requirement) approvals.Result {
	t.Helper()
	res, err := f.s.Gate(context.Background(), c, r)
	if err != nil {
		t.Fatalf("Gate: %v", err)
	}
	return res
}

func (f *fixture) approve(t *testing.T, id string) {
	t.Helper()
	if err := f.s.Approve(context.Background(), id, "user:alice"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
}

const (
	digestA = "1111111111111111111111111111111111111111111111111111111111111111"
	digestB = "2222222222222222222222222222222222222222222222222222222222222222"
)

func refund() approvals.Call {
	return approvals.Call{
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Resource: "mcp://payments",
		Action: "refund", ArgumentsSHA256: digestA, DecisionID: "dec-1",
		Arguments: `{"amount":120,"memo":"<b>ACME</b>"}`,
	}
}

var once = approvals.Requirement{BindingMessage: "Refund $120 to ACME?", Approvers: []string{"group:finance"}, TTL: 10 * time.Minute}
