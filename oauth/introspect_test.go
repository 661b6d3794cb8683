package oauth_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func wantInactive(t *testing.T, r response) {
	t.Helper()
	if r.Status != 200 || !cmp.Equal(r.Body, map[string]any{"active": false}) {
		t.Errorf("got %d %v, want exactly {\"active\": false}", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
}

func TestIntrospect(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	ctx := context.Background()
	tok := e.ccToken(ccAuth, url.Values{"scope": {"tools.read"}})
	claims := e.verify(tok)
	r := e.post("/introspect", ccAuth, url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	want := map[string]any{
		"active": true, "token_type": "Bearer", "scope": "tools.read", "client_id": "cc", "sub": "cc",
		"aud": []any{resourceA}, "iss": e.srv.URL, "exp": claims["exp"], "iat": claims["iat"], "nbf": claims["nbf"],
		"jti": claims["jti"], "tenant": "acme",
	}
	if r.Status != 200 {
		t.Fatalf("introspect: %d %v", r.Status, r.Body)
	}
	if diff := cmp.Diff(want, r.Body); diff != "" {
		t.Errorf("introspection (-want +got):\n%s", diff)
	}

	t.Run("delegated token carries act", func(t *testing.T) {
		first := e.exchange(ccAuth, e.idpToken(nil), nil).str("access_token")
		second := e.exchange("basic cc2 "+ccSecret, first, nil).str("access_token")
		r := e.post("/introspect", "basic cc2 "+ccSecret, url.Values{"token": {second}})
		if r.Body["active"] != true || r.Body["sub"] != user ||
			!cmp.Equal(r.Body["act"], map[string]any{"sub": "cc2", "act": map[string]any{"sub": "cc"}}) {
			t.Fatalf("got %v", r.Body)
		}
		// An agent in the chain is suspended: the token is no longer active.
		if err := e.agents.Suspend(ctx, "cc", "user:op", "test"); err != nil {
			t.Fatal(err)
		}
		defer e.agents.Resume(ctx, "cc", "user:op")
		wantInactive(t, e.post("/introspect", "basic cc2 "+ccSecret, url.Values{"token": {second}}))
	})

	revoked := e.ccToken(ccAuth, nil)
	if r := e.post("/revoke", ccAuth, url.Values{"token": {revoked}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	inactive := []struct {
		name, token string
	}{
		{"revoked", revoked},
		{"another client's", e.ccToken("basic cc2 "+ccSecret, nil)},
		{"another issuer's", e.idpToken(nil)},
		{"not a token", "garbage"},
	}
	for _, tt := range inactive {
		t.Run(tt.name, func(t *testing.T) {
			wantInactive(t, e.post("/introspect", ccAuth, url.Values{"token": {tt.token}}))
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(5*time.Minute + time.Second)
		wantInactive(t, e.post("/introspect", ccAuth, url.Values{"token": {tok}}))
	})
}

func TestIntrospectErrors(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	tok := e.ccToken(ccAuth, nil)
	e.register(agentSpec{id: "stopped", secret: ccSecret, grants: ccGrants})
	if err := e.agents.Suspend(context.Background(), "stopped", "user:op", "test"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		code   string
	}{
		{"no client authentication", "none", url.Values{"token": {tok}}, 401, "invalid_client"},
		{"wrong secret", "basic cc wrong", url.Values{"token": {tok}}, 401, "invalid_client"},
		{"no token", ccAuth, url.Values{}, 400, "invalid_request"},
		{"suspended client", "basic stopped " + ccSecret, url.Values{"token": {tok}}, 400, "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.post("/introspect", tt.auth, tt.form), tt.status, tt.code)
		})
	}
}
