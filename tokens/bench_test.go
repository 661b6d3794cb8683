package tokens_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/tokens"
)

// go test -run '^$' -bench . -benchmem ./tokens/

func BenchmarkMint(b *testing.B) {
	ctx := context.Background()
	keys := openKeyring(b, openDB(b, b.TempDir()), tokens.KeyringOptions{})
	m, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: writIssuer})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	req := mintRequest()

	b.Run("cached", func(b *testing.B) {
		if _, err := m.Mint(ctx, req); err != nil {
			b.Fatal(err)
		}
		m.Wait()
		b.ReportAllocs()
		for b.Loop() {
			if got, err := m.Mint(ctx, req); err != nil || !got.Reused {
				b.Fatalf("reused=%v err=%v", got.Reused, err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r := req
			r.ApprovalID = strconv.Itoa(i) // a distinct call every time
			i++
			if got, err := m.Mint(ctx, r); err != nil || got.Reused {
				b.Fatalf("reused=%v err=%v", got.Reused, err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Mint(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	idp := newTestIssuer(b)
	now := time.Now()

	b.Run("cached", func(b *testing.B) {
		v := newVerifier(b, []tokens.IssuerConfig{idp.config(b)}, tokens.VerifierOptions{})
		raw := idp.sign(b, ecKID, idp.claims(now), nil)
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
		v.Wait()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		v := newVerifier(b, []tokens.IssuerConfig{idp.config(b)}, tokens.VerifierOptions{})
		raw := idp.sign(b, ecKID, idp.claims(now), nil)
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
		v.Wait()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		// A one-entry cache and 1024 distinct tokens: (nearly) every call
		// parses and checks a signature.
		v := newVerifier(b, []tokens.IssuerConfig{idp.config(b)}, tokens.VerifierOptions{CacheMaxCost: 1})
		pool := make([]string, 1024)
		for i := range pool {
			pool[i] = idp.sign(b, ecKID, with(idp.claims(now), "jti", strconv.Itoa(i)), nil)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := v.Verify(ctx, pool[i%len(pool)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
