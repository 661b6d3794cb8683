package agents_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openStore(t *testing.T, db *store.DB, now time.Time) *agents.Store {
	t.Helper()
	s, err := agents.Open(t.Context(), db, agents.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestStateMachine(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	if err := s.Register(ctx, agents.Agent{ClientID: "bot", Name: "Bot", Owner: "alice", Tenant: "acme", Status: agents.Pending}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		op      func() error
		wantErr error
		want    agents.Status
	}{
		{"register twice", func() error { return s.Register(ctx, agents.Agent{ClientID: "bot"}) }, agents.ErrExists, agents.Pending},
		{"resume a pending agent", func() error { return s.Resume(ctx, "bot", "user:op") }, agents.ErrTransition, agents.Pending},
		{"approve", func() error { return s.Approve(ctx, "bot", "user:op") }, nil, agents.Active},
		{"approve again", func() error { return s.Approve(ctx, "bot", "user:op") }, agents.ErrTransition, agents.Active},
		{"suspend", func() error { return s.Suspend(ctx, "bot", "user:op", "leaking") }, nil, agents.Suspended},
		{"suspend again", func() error { return s.Suspend(ctx, "bot", "user:op", "again") }, agents.ErrTransition, agents.Suspended},
		{"approve a suspended agent", func() error { return s.Approve(ctx, "bot", "user:op") }, agents.ErrTransition, agents.Suspended},
		{"resume", func() error { return s.Resume(ctx, "bot", "user:op") }, nil, agents.Active},
		{"suspend unknown", func() error { return s.Suspend(ctx, "nobody", "user:op", "") }, agents.ErrNotFound, agents.Active},
		{"register without client_id", func() error { return s.Register(ctx, agents.Agent{}) }, agents.ErrInvalid, agents.Active},
		{"register with a bad status", func() error { return s.Register(ctx, agents.Agent{ClientID: "x", Status: "gone"}) }, agents.ErrInvalid, agents.Active},
	}
	for _, st := range steps {
		if err := st.op(); !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if got, known := s.Status(ctx, "bot"); !known || got != string(st.want) {
			t.Fatalf("%s: status = %q (known %t), want %q", st.name, got, known, st.want)
		}
	}
	a, err := s.Get(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	want := agents.Agent{ClientID: "bot", Name: "Bot", Owner: "alice", Tenant: "acme", Status: agents.Active, CreatedAt: t0,
		StatusBy: "user:op", StatusAt: t0, Epoch: 1}
	if a != want {
		t.Errorf("agent\n got %+v\nwant %+v", a, want)
	}
	if err := s.Delete(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	if _, known := s.Status(ctx, "bot"); known {
		t.Error("deleted agent still known")
	}
	if _, err := s.Get(ctx, "bot"); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	if err := s.Delete(ctx, "bot"); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("Delete twice: %v", err)
	}
}

func TestList(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, openDB(t), t0)
	for _, a := range []agents.Agent{
		{ClientID: "b", Tenant: "acme"}, {ClientID: "a", Tenant: "acme", Status: agents.Pending}, {ClientID: "c", Tenant: "globex"},
	} {
		if err := s.Register(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		f    agents.Filter
		want []string
	}{
		{agents.Filter{}, []string{"a", "b", "c"}},
		{agents.Filter{Tenant: "acme"}, []string{"a", "b"}},
		{agents.Filter{Status: agents.Pending}, []string{"a"}},
		{agents.Filter{Status: agents.Suspended}, nil},
	}
	for _, c := range cases {
		got, err := s.List(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ClientID)
		}
		if len(ids) != len(c.want) || (len(ids) > 0 && (ids[0] != c.want[0] || ids[len(ids)-1] != c.want[len(c.want)-1])) {
			t.Errorf("List(%+v) = %v, want %v", c.f, ids, c.want)
		}
	}
}

// A suspension made through one Store (another replica, or the CLI) is
// seen by a second Store on the same database at its next refresh, and not
// before: Status never reads the database.
func TestSuspensionSeenByAnotherStoreAfterOneRefresh(t *testing.T) {
	ctx := t.Context()
	db := openDB(t)
	a := openStore(t, db, t0)
	b := openStore(t, db, t0)
	if err := a.Register(ctx, agents.Agent{ClientID: "bot"}); err != nil {
		t.Fatal(err)
	}
	if _, known := b.Status(ctx, "bot"); known {
		t.Fatal("b knows bot before refreshing")
	}
	refresh, flush := make(chan time.Time), make(chan time.Time)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.RunWith(runCtx, refresh, flush) }()
	tick := func() {
		refresh <- t0
		refresh <- t0 // the second send returns only once the first tick was handled
	}
	tick()
	if st, _ := b.Status(ctx, "bot"); st != "active" {
		t.Fatalf("after refresh b sees %q", st)
	}
	gen := b.Generation()
	if err := a.Suspend(ctx, "bot", "user:op", "stop"); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.Status(ctx, "bot"); st != "suspended" {
		t.Fatalf("the suspending store sees %q", st)
	}
	if st, _ := b.Status(ctx, "bot"); st != "active" {
		t.Fatalf("before its refresh b sees %q", st)
	}
	tick()
	if st, _ := b.Status(ctx, "bot"); st != "suspended" {
		t.Fatalf("after one refresh b sees %q", st)
	}
	if b.Generation() == gen {
		t.Error("generation did not move with the new snapshot")
	}
	gen = b.Generation()
	tick() // nothing changed: no reload
	if b.Generation() != gen {
		t.Error("generation moved without a change")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTouchIsBatched(t *testing.T) {
	ctx := t.Context()
	db := openDB(t)
	now := t0
	s, err := agents.Open(ctx, db, agents.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, agents.Agent{ClientID: "bot"}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Minute)
	s.Touch(ctx, "bot")
	s.Touch(ctx, "stranger") // unknown: ignored
	if a, _ := s.Get(ctx, "bot"); !a.LastSeen.IsZero() {
		t.Fatalf("Touch wrote at once: %v", a.LastSeen)
	}
	refresh, flush := make(chan time.Time), make(chan time.Time)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.RunWith(runCtx, refresh, flush) }()
	flush <- now
	flush <- now
	if a, _ := s.Get(ctx, "bot"); !a.LastSeen.Equal(now) {
		t.Fatalf("last seen %v after flush, want %v", a.LastSeen, now)
	}
	now = t0.Add(2 * time.Minute)
	s.Touch(ctx, "bot")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Get(ctx, "bot"); !a.LastSeen.Equal(now) {
		t.Fatalf("last seen %v after Run ended, want %v", a.LastSeen, now)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM agents WHERE client_id = 'stranger'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("stranger rows %d, err %v", n, err)
	}
}
