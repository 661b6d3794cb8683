package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/oauth"
)

// exchangeEnv has the agents token exchange tests use: cc (secret) and
// cc-jwt (private_key_jwt), both registered for tools.read and tools.call
// in tenant acme, and cc2, a second agent.
func exchangeEnv(t *testing.T, o envOptions) *env {
	e := newEnvOpts(t, o)
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call", tenant: "acme"})
	e.register(agentSpec{id: "cc-jwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants, scope: "tools.read tools.call"})
	e.register(agentSpec{id: "cc2", secret: ccSecret, grants: ccGrants})
	e.register(agentSpec{id: "cc3", secret: ccSecret, grants: ccGrants})
	return e
}

func TestTokenExchange(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	r := e.exchange(ccAuth, e.idpToken(nil), url.Values{"scope": {"tools.read"}, "requested_token_type": {oauth.TokenTypeAccessToken}})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %v", r.Status, r.Body)
	}
	access := r.str("access_token")
	delete(r.Body, "access_token")
	want := map[string]any{"token_type": "Bearer", "expires_in": 300.0, "scope": "tools.read", "issued_token_type": oauth.TokenTypeAccessToken}
	if diff := cmp.Diff(want, r.Body); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	id, err := e.verifier.Verify(context.Background(), access)
	if err != nil {
		t.Fatalf("exchanged token does not verify: %v", err)
	}
	if id.User != user || id.Agent != "cc" || id.ClientID != "cc" || id.Tenant != "acme" ||
		!cmp.Equal(id.Actors, []string{"cc"}) || !cmp.Equal(id.Scopes, []string{"tools.read"}) {
		t.Errorf("identity %+v", id)
	}

	t.Run("no scope asked: the subject's within the agent's", func(t *testing.T) {
		subject := e.idpToken(func(c jwt.MapClaims) { c["scope"] = "tools.read admin" })
		r := e.exchange(ccAuth, subject, nil)
		if r.Status != 200 || r.str("scope") != "tools.read" {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
	})
	t.Run("never outlives the subject token", func(t *testing.T) {
		subject := e.idpToken(func(c jwt.MapClaims) { c["exp"] = e.clock.Now().Add(40 * time.Second).Unix() })
		r := e.exchange(ccAuth, subject, nil)
		if r.Status != 200 || r.Body["expires_in"] != 40.0 {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
	})
	t.Run("may_act naming the agent", func(t *testing.T) {
		for _, mayAct := range []map[string]any{{"sub": "cc"}, {"sub": "cc", "iss": e.srv.URL}} {
			subject := e.idpToken(func(c jwt.MapClaims) { c["may_act"] = mayAct })
			if r := e.exchange(ccAuth, subject, nil); r.Status != 200 {
				t.Errorf("may_act %v: %d %v", mayAct, r.Status, r.Body)
			}
		}
	})
	t.Run("the agent's own token as actor_token", func(t *testing.T) {
		actor := e.ccToken(ccAuth, nil)
		r := e.exchange(ccAuth, e.idpToken(nil), url.Values{"actor_token": {actor}, "actor_token_type": {oauth.TokenTypeJWT}})
		if r.Status != 200 {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
	})
	t.Run("private_key_jwt agent", func(t *testing.T) {
		r := e.exchange(e.assertionFor("cc-jwt", e.key, nil), e.idpToken(nil), url.Values{"subject_token_type": {oauth.TokenTypeJWT}})
		if r.Status != 200 {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
		if act := e.verify(r.str("access_token"))["act"]; !cmp.Equal(act, map[string]any{"sub": "cc-jwt"}) {
			t.Errorf("act %v", act)
		}
	})
}

// TestDelegationChain exchanges a delegated token again: the newest actor
// is outermost, and the chain stops at the maximum depth.
func TestDelegationChain(t *testing.T) {
	e := exchangeEnv(t, envOptions{token: oauth.TokenConfig{MaxDelegationDepth: 2}})
	first := e.exchange(ccAuth, e.idpToken(nil), nil)
	if first.Status != 200 {
		t.Fatalf("first exchange: %d %v", first.Status, first.Body)
	}
	second := e.exchange("basic cc2 "+ccSecret, first.str("access_token"), nil)
	if second.Status != 200 {
		t.Fatalf("second exchange: %d %v", second.Status, second.Body)
	}
	claims := e.verify(second.str("access_token"))
	wantAct := map[string]any{"sub": "cc2", "act": map[string]any{"sub": "cc"}}
	if claims["sub"] != user || !cmp.Equal(claims["act"], wantAct) || claims["tenant"] != "acme" {
		t.Errorf("sub %v act %v tenant %v", claims["sub"], claims["act"], claims["tenant"])
	}
	// The second agent registered no scope: the subject's scope passes.
	if second.str("scope") != "tools.call tools.read" {
		t.Errorf("scope %q", second.str("scope"))
	}
	wantError(t, e.exchange("basic cc3 "+ccSecret, second.str("access_token"), nil), 400, "invalid_request")
}

func TestTokenExchangeErrors(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	now := e.clock.Now()
	good := e.idpToken(nil)
	otherActor := e.ccToken("basic cc2 "+ccSecret, nil)
	ownActor := e.ccToken(ccAuth, nil)
	revoked := e.exchange(ccAuth, e.idpToken(nil), nil).str("access_token")
	if r := e.post("/revoke", ccAuth, url.Values{"token": {revoked}}); r.Status != 200 {
		t.Fatalf("revoke: %d", r.Status)
	}
	untrusted := func() string {
		c := jwt.MapClaims{"iss": "https://stranger.example", "sub": user, "aud": resourceA, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
		return sign(t, e.idpKey, "agent-key", c)
	}()
	tests := []struct {
		name    string
		auth    string
		subject string
		extra   url.Values
		status  int
		code    string
	}{
		// Attacks.
		{"an agent's own token as the subject", ccAuth, otherActor, nil, 400, "invalid_request"},
		{"actor not allowed by may_act", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["may_act"] = map[string]any{"sub": "cc2"} }), nil, 400, "invalid_request"},
		{"may_act from another issuer", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["may_act"] = map[string]any{"sub": "cc", "iss": "https://other.example"} }), nil, 400, "invalid_request"},
		{"may_act not an object", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["may_act"] = "cc" }), nil, 400, "invalid_request"},
		{"may_act without sub", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["may_act"] = map[string]any{} }), nil, 400, "invalid_request"},
		{"scope widening past the subject", ccAuth, good, url.Values{"scope": {"tools.read admin"}}, 400, "invalid_scope"},
		{"scope widening past the agent", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["scope"] = "tools.read admin" }), url.Values{"scope": {"admin"}}, 400, "invalid_scope"},
		{"expired subject token", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), nil, 400, "invalid_request"},
		{"subject token without exp", ccAuth, e.idpToken(func(c jwt.MapClaims) { delete(c, "exp") }), nil, 400, "invalid_request"},
		{"subject token for another audience", ccAuth, e.idpToken(func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }), nil, 400, "invalid_request"},
		{"subject token from an untrusted issuer", ccAuth, untrusted, nil, 400, "invalid_request"},
		{"subject token not a JWT", ccAuth, "not-a-token", nil, 400, "invalid_request"},
		{"revoked subject token", ccAuth, revoked, nil, 400, "invalid_request"},
		{"actor_token of another client", ccAuth, good, url.Values{"actor_token": {otherActor}, "actor_token_type": {oauth.TokenTypeAccessToken}}, 400, "invalid_request"},
		{"actor_token that does not verify", ccAuth, good, url.Values{"actor_token": {"x.y.z"}, "actor_token_type": {oauth.TokenTypeAccessToken}}, 400, "invalid_request"},
		{"replayed client assertion", "replay", good, nil, 401, "invalid_client"},
		{"wrong audience in assertion", e.assertionFor("cc-jwt", e.key, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example/token" }), good, nil, 401, "invalid_client"},
		{"assertion for the backchannel endpoint", e.assertionFor("cc-jwt", e.key, func(c jwt.MapClaims) { c["aud"] = e.srv.URL + "/bc-authorize" }), good, nil, 401, "invalid_client"},
		// Malformed requests.
		{"no subject_token", ccAuth, "", nil, 400, "invalid_request"},
		{"no subject_token_type", ccAuth, good, url.Values{"subject_token_type": nil}, 400, "invalid_request"},
		{"refresh token as subject", ccAuth, good, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, 400, "invalid_request"},
		{"actor_token without type", ccAuth, good, url.Values{"actor_token": {ownActor}}, 400, "invalid_request"},
		{"actor_token_type without token", ccAuth, good, url.Values{"actor_token_type": {oauth.TokenTypeJWT}}, 400, "invalid_request"},
		{"requested_token_type id_token", ccAuth, good, url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, 400, "invalid_request"},
		{"unknown audience", ccAuth, good, url.Values{"resource": nil, "audience": {"https://elsewhere.example"}}, 400, "invalid_target"},
		{"no target with several resources", ccAuth, good, url.Values{"resource": nil}, 400, "invalid_target"},
	}
	// The attacks must fail for the reason named, not an earlier one.
	descriptions := map[string]string{
		"actor not allowed by may_act":           "the subject_token's may_act does not name this agent",
		"may_act from another issuer":            "the subject_token's may_act does not name this agent",
		"scope widening past the subject":        "scope is wider than the subject_token's",
		"scope widening past the agent":          "scope is wider than the client's registered scope",
		"expired subject token":                  "the subject_token has expired",
		"revoked subject token":                  "the subject_token has been revoked",
		"actor_token of another client":          "the actor_token is not the client's own",
		"replayed client assertion":              "client assertion replayed",
		"wrong audience in assertion":            "client assertion audience does not name writ",
		"assertion for the backchannel endpoint": "client assertion audience does not name writ",
	}
	replayed := e.assertionFor("cc-jwt", e.key, nil)
	if r := e.exchange(replayed, good, nil); r.Status != 200 {
		t.Fatalf("first use of the assertion: %d %v", r.Status, r.Body)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := tt.auth
			if auth == "replay" {
				auth = replayed
			}
			extra := tt.extra
			if tt.subject == "" {
				extra = url.Values{"subject_token": nil}
			}
			r := e.exchange(auth, tt.subject, extra)
			wantError(t, r, tt.status, tt.code)
			if want, ok := descriptions[tt.name]; ok && r.str("error_description") != want {
				t.Errorf("error_description %q, want %q", r.str("error_description"), want)
			}
		})
	}
}
