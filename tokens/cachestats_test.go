package tokens_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/tokens"
)

type stats struct{ hits, misses uint64 }

func TestVerifierCacheStats(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	ctx := context.Background()
	good := idp.sign(t, ecKID, with(idp.claims(clk.Now()), "exp", clk.Now().Add(2*time.Minute).Unix()), nil)
	other := idp.sign(t, ecKID, with(idp.claims(clk.Now()), "sub", "user-8"), nil)
	bad := good + "x"

	steps := []struct {
		name    string
		token   string
		advance time.Duration
		wantErr bool
		want    stats
	}{
		{"empty token is no lookup", "", 0, true, stats{0, 0}},
		{"oversized token is no lookup", string(make([]byte, tokens.MaxTokenSize+1)), 0, true, stats{0, 0}},
		{"first sight verifies", good, 0, false, stats{0, 1}},
		{"second sight is served", good, 0, false, stats{1, 1}},
		{"third sight is served", good, time.Minute, false, stats{2, 1}},
		{"another token verifies", other, 0, false, stats{2, 2}},
		{"a failure is a miss", bad, 0, true, stats{2, 3}},
		{"a failure is not cached", bad, 0, true, stats{2, 4}},
		{"past exp the cache is not served", good, time.Minute + time.Second, false, stats{2, 5}},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		_, err := v.Verify(ctx, s.token)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err = %v, want error %v", s.name, err, s.wantErr)
		}
		v.Wait()
		if h, m := v.CacheStats(); (stats{h, m}) != s.want {
			t.Fatalf("%s: CacheStats = %d hits, %d misses; want %+v", s.name, h, m, s.want)
		}
	}
}

func TestMinterCacheStats(t *testing.T) {
	f := newMintFixture(t, "ES256")
	ctx := context.Background()
	req := mintRequest()
	req.TTL = 3 * time.Minute // reuse window: 2 minutes
	otherAudience := req
	otherAudience.Audience = "https://elsewhere.internal"
	invalid := req
	invalid.Audience = ""

	steps := []struct {
		name    string
		req     tokens.MintRequest
		advance time.Duration
		rotate  bool
		wantErr bool
		reused  bool
		want    stats
	}{
		{"invalid request is no lookup", invalid, 0, false, true, false, stats{0, 0}},
		{"first request mints", req, 0, false, false, false, stats{0, 1}},
		{"same request is served", req, 0, false, false, true, stats{1, 1}},
		{"still within the reuse window", req, 119 * time.Second, false, false, true, stats{2, 1}},
		{"another audience mints", otherAudience, 0, false, false, false, stats{2, 2}},
		{"past the reuse window mints", req, time.Second, false, false, false, stats{2, 3}},
		{"served again", req, 0, false, false, true, stats{3, 3}},
		{"a new signing key mints", req, 0, true, false, false, stats{3, 4}},
	}
	for _, s := range steps {
		f.clk.Advance(s.advance)
		if s.rotate {
			if _, err := f.keys.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		minted, err := f.minter.Mint(ctx, s.req)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err = %v, want error %v", s.name, err, s.wantErr)
		}
		if minted.Reused != s.reused {
			t.Fatalf("%s: Reused = %v, want %v", s.name, minted.Reused, s.reused)
		}
		f.minter.Wait()
		if h, m := f.minter.CacheStats(); (stats{h, m}) != s.want {
			t.Fatalf("%s: CacheStats = %d hits, %d misses; want %+v", s.name, h, m, s.want)
		}
	}
}

// TestCacheStatsConcurrent: every lookup is counted exactly once, however
// many goroutines look up at once.
func TestCacheStatsConcurrent(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	f := newMintFixture(t, "ES256")
	raw := idp.sign(t, ecKID, idp.claims(clk.Now()), nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := f.minter.Mint(ctx, mintRequest()); err != nil {
		t.Fatal(err)
	}
	v.Wait()
	f.minter.Wait()

	const workers, each = 8, 200
	var reused sync.Map // worker -> count of reused mints
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			n := 0
			for range each {
				if _, err := v.Verify(ctx, raw); err != nil {
					errs <- err
					return
				}
				m, err := f.minter.Mint(ctx, mintRequest())
				if err != nil {
					errs <- err
					return
				}
				if m.Reused {
					n++
				}
			}
			reused.Store(w, n)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hits, misses := v.CacheStats()
	if hits+misses != workers*each+1 || misses < 1 {
		t.Fatalf("verifier: %d hits + %d misses, want %d lookups", hits, misses, workers*each+1)
	}
	var totalReused uint64
	reused.Range(func(_, n any) bool { totalReused += uint64(n.(int)); return true })
	hits, misses = f.minter.CacheStats()
	if hits+misses != workers*each+1 || hits != totalReused {
		t.Fatalf("minter: %d hits + %d misses, want %d lookups with %d reused", hits, misses, workers*each+1, totalReused)
	}
}
