package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

func TestRevocationsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t, t.TempDir())
	a, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := clk.Now().Add(5 * time.Minute)
	if err := a.Revoke(ctx, "jti-1", "agent-3", exp); err != nil {
		t.Fatal(err)
	}
	if !a.Revoked("jti-1") {
		t.Error("the revoking replica does not refuse the token at once")
	}
	if b.Revoked("jti-1") {
		t.Fatal("precondition: the other replica has not refreshed yet")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Revoked("jti-1") {
		t.Error("the other replica does not see the revocation after Refresh")
	}
	// Revoking twice is fine; unknown and empty jtis are not revoked.
	if err := b.Revoke(ctx, "jti-1", "agent-3", exp); err != nil {
		t.Errorf("second revocation: %v", err)
	}
	if a.Revoked("jti-2") || a.Revoked("") {
		t.Error("an unrevoked jti is reported revoked")
	}
	if err := a.Revoke(ctx, "", "agent-3", exp); !errors.Is(err, tokens.ErrRevocation) {
		t.Errorf("empty jti: %v, want ErrRevocation", err)
	}

	// A replica whose clock lags writes revoked_at in the past of what b
	// has read: the skew window still picks it up.
	lagging, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: func() time.Time { return clk.Now().Add(-5 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := lagging.Revoke(ctx, "jti-lag", "agent-3", exp); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Revoked("jti-lag") {
		t.Error("a revocation from a replica with a lagging clock was missed")
	}
}

func TestRevocationsResyncPurges(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t, t.TempDir())
	r, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: clk.Now, Keep: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke(ctx, "short", "a", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke(ctx, "long", "a", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Minute + time.Second)
	if err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM revoked_tokens`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || r.Revoked("short") || !r.Revoked("long") {
		t.Errorf("after resync: %d rows, short %v, long %v; want 1 row, only long", rows, r.Revoked("short"), r.Revoked("long"))
	}
	// A fresh replica loads what is left.
	fresh, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.Revoked("long") {
		t.Error("a new replica does not load live revocations")
	}
}

func TestRevocationsRunStops(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := tokens.OpenRevocations(context.Background(), db, tokens.RevocationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestOpenRevocationsErrors(t *testing.T) {
	db := openDB(t, t.TempDir())
	if _, err := tokens.OpenRevocations(context.Background(), nil, tokens.RevocationOptions{}); err == nil {
		t.Error("no database accepted")
	}
	if _, err := tokens.OpenRevocations(context.Background(), db, tokens.RevocationOptions{Refresh: -time.Second}); err == nil {
		t.Error("negative refresh accepted")
	}
}

func BenchmarkRevoked(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, b.TempDir())
	r, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := r.Revoke(ctx, "jti-"+strconv.Itoa(i), "a", time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r.Revoked("not-revoked") {
				b.Fatal("revoked")
			}
		}
	})
}

func ExampleRevocations() {
	ctx := context.Background()
	dataDir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dataDir)
	db, err := store.OpenSQLite(ctx, dataDir)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	revs, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// go revs.Run(ctx) reads what other replicas revoke, every second.
	if err := revs.Revoke(ctx, "4Xn0Yb3v", "agent-3", time.Now().Add(5*time.Minute)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(revs.Revoked("4Xn0Yb3v"), revs.Revoked("another"))
	// Output: true false
}
