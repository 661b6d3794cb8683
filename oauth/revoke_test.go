package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/tokens"
)

func TestRevoke(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	ctx := context.Background()
	jti := func(tok string) string { return e.verify(tok)["jti"].(string) }

	t.Run("own token, on every replica", func(t *testing.T) {
		tok := e.ccToken(ccAuth, nil)
		r := e.post("/revoke", ccAuth, url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
		if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("revoke: %d %v", r.Status, r.Header)
		}
		if !e.revs.Revoked(jti(tok)) {
			t.Error("this replica does not refuse the revoked token")
		}
		other, err := tokens.OpenRevocations(ctx, e.db, tokens.RevocationOptions{Now: e.now})
		if err != nil {
			t.Fatal(err)
		}
		if !other.Revoked(jti(tok)) {
			t.Error("another replica does not see the revocation")
		}
		wantInactive(t, e.post("/introspect", ccAuth, url.Values{"token": {tok}}))
	})
	t.Run("hints change nothing", func(t *testing.T) {
		for _, hint := range []string{"refresh_token", "urn:example:unknown"} {
			tok := e.ccToken(ccAuth, nil)
			if r := e.post("/revoke", ccAuth, url.Values{"token": {tok}, "token_type_hint": {hint}}); r.Status != 200 {
				t.Fatalf("hint %s: %d %v", hint, r.Status, r.Body)
			}
			if !e.revs.Revoked(jti(tok)) {
				t.Errorf("hint %s: token not revoked", hint)
			}
		}
	})
	t.Run("delegated token by its agent", func(t *testing.T) {
		tok := e.exchange(ccAuth, e.idpToken(nil), nil).str("access_token")
		if r := e.post("/revoke", ccAuth, url.Values{"token": {tok}}); r.Status != 200 || !e.revs.Revoked(jti(tok)) {
			t.Fatalf("delegated token not revoked: %d", r.Status)
		}
	})
	t.Run("a suspended agent may still revoke", func(t *testing.T) {
		e.register(agentSpec{id: "doomed", secret: ccSecret, grants: ccGrants})
		tok := e.ccToken("basic doomed "+ccSecret, nil)
		if err := e.agents.Suspend(ctx, "doomed", "user:op", "test"); err != nil {
			t.Fatal(err)
		}
		if r := e.post("/revoke", "basic doomed "+ccSecret, url.Values{"token": {tok}}); r.Status != 200 || !e.revs.Revoked(jti(tok)) {
			t.Fatalf("suspended agent's revocation: %d", r.Status)
		}
	})

	// Tokens the client may not revoke get the same 200 and stay valid.
	unchanged := []struct {
		name, token string
	}{
		{"another client's token", e.ccToken("basic cc2 "+ccSecret, nil)},
		{"a token from another issuer", e.idpToken(nil)},
		{"not a token", "garbage"},
		{"a JWT-looking string", "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln"},
	}
	for _, u := range unchanged {
		t.Run(u.name, func(t *testing.T) {
			if r := e.post("/revoke", ccAuth, url.Values{"token": {u.token}}); r.Status != 200 {
				t.Fatalf("got %d %v", r.Status, r.Body)
			}
		})
	}
	if _, err := e.verifier.Verify(ctx, unchanged[0].token); err != nil || e.revs.Revoked(jti(unchanged[0].token)) {
		t.Errorf("another client revoked cc2's token (verify error %v)", err)
	}
	t.Run("an expired token is not stored", func(t *testing.T) {
		tok := e.ccToken(ccAuth, nil)
		id := jti(tok)
		e.clock.Advance(6 * time.Minute)
		if r := e.post("/revoke", ccAuth, url.Values{"token": {tok}}); r.Status != 200 {
			t.Fatalf("got %d", r.Status)
		}
		if e.revs.Revoked(id) {
			t.Error("an expired token was stored as revoked")
		}
	})
}

func TestRevokeErrors(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	tok := e.ccToken(ccAuth, nil)
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		code   string
	}{
		{"no client authentication", "none", url.Values{"token": {tok}}, 401, "invalid_client"},
		{"wrong secret", "basic cc wrong", url.Values{"token": {tok}}, 401, "invalid_client"},
		{"no token", ccAuth, url.Values{"token_type_hint": {"access_token"}}, 400, "invalid_request"},
		{"repeated token", ccAuth, url.Values{"token": {tok, tok}}, 400, "invalid_request"},
		{"replayed assertion", "", url.Values{"token": {tok}}, 401, "invalid_client"},
	}
	a := e.assertionFor("cc-jwt", e.key, nil)
	if r := e.post("/revoke", a, url.Values{"token": {"x"}}); r.Status != 200 {
		t.Fatalf("first use of the assertion: %d %v", r.Status, r.Body)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := tt.auth
			if auth == "" {
				auth = a
			}
			wantError(t, e.post("/revoke", auth, tt.form), tt.status, tt.code)
		})
	}
	if e.revs.Revoked(e.verify(tok)["jti"].(string)) {
		t.Error("a refused revocation revoked the token")
	}
	t.Run("not a form", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/revoke", strings.NewReader(`{"token":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("cc", ccSecret)
		wantError(t, e.do(req), 400, "invalid_request")
	})
}

// TestRevokeAssertionAudience accepts an assertion naming the revocation
// endpoint itself.
func TestRevokeAssertionAudience(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	tok := e.exchange(e.assertionFor("cc-jwt", e.key, nil), e.idpToken(nil), nil).str("access_token")
	a := e.assertionFor("cc-jwt", e.key, func(c jwt.MapClaims) { c["aud"] = e.srv.URL + "/revoke" })
	if r := e.post("/revoke", a, url.Values{"token": {tok}}); r.Status != 200 || !e.revs.Revoked(e.verify(tok)["jti"].(string)) {
		t.Fatalf("got %d %v", r.Status, r.Body)
	}
}
