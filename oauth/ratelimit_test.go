package oauth_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/writ-dev/writ/oauth"
)

// Guessing secrets is bounded: once an address has spent its allowance of
// failed client authentications, it is answered 429 — even with the right
// secret — until the allowance refills; successful authentications spend
// nothing.
func TestFailedClientAuthenticationLimit(t *testing.T) {
	e := exchangeEnv(t, envOptions{failedAuth: oauth.RateLimit{PerMinute: 60, Burst: 3}})
	form := func() url.Values {
		return url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "resource": {resourceA}}
	}
	for range 5 {
		if r := e.post("/token", ccAuth, form()); r.Status != http.StatusOK {
			t.Fatalf("right secret: %d %v", r.Status, r.Body)
		}
	}
	for i := range 3 {
		if r := e.post("/token", "basic cc wrong-secret", form()); r.Status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Fatalf("wrong secret %d: %d %v, want 401 invalid_client", i, r.Status, r.Body)
		}
	}
	for _, auth := range []string{"basic cc wrong-secret", ccAuth} {
		r := e.post("/token", auth, form())
		if r.Status != http.StatusTooManyRequests || r.str("error") != "slow_down" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("after the allowance (%s): %d %v Retry-After %q, want 429 slow_down", auth[:8], r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	// The same limit guards revocation and introspection.
	if r := e.post("/introspect", ccAuth, url.Values{"token": {"x"}}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("introspection after the allowance: %d, want 429", r.Status)
	}
	if n := len(e.evidence.records()); n != 5+3 {
		t.Errorf("%d evidence records, want 8: the 429s are not recorded", n)
	}
	e.clock.Advance(time.Second)
	if r := e.post("/token", ccAuth, form()); r.Status != http.StatusOK {
		t.Fatalf("after one token refilled: %d %v", r.Status, r.Body)
	}
}
