package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/tokens"
)

const ccSecret = "cc-secret-value"

// ccAuth authenticates the agent "cc" with its secret.
var ccAuth = "basic cc " + ccSecret

func TestClientCredentials(t *testing.T) {
	e := newEnvOpts(t, envOptions{token: oauth.TokenConfig{TokenTTL: time.Minute}})
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call", tenant: "acme"})

	r := e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}, "scope": {"tools.read"}})
	if r.Status != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", r.Status, r.Body)
	}
	if got := r.Header.Get("Cache-Control") + " " + r.Header.Get("Pragma"); got != "no-store no-cache" {
		t.Errorf("Cache-Control and Pragma = %q", got)
	}
	access := r.str("access_token")
	delete(r.Body, "access_token")
	if diff := cmp.Diff(map[string]any{"token_type": "Bearer", "expires_in": 60.0, "scope": "tools.read"}, r.Body); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}

	// The token verifies with a verifier that trusts writ, as the agent
	// acting as itself.
	id, err := e.verifier.Verify(context.Background(), access)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	want := &tokens.Identity{Agent: "cc", ClientID: "cc", Tenant: "acme", Issuer: e.srv.URL, Scopes: []string{"tools.read"}}
	if diff := cmp.Diff(want, id, cmpopts.IgnoreFields(tokens.Identity{}, "Claims", "ExpiresAt")); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	claims := e.verify(access)
	if claims["sub"] != "cc" || claims["client_id"] != "cc" || claims["aud"].([]any)[0] != resourceA || claims["jti"] == "" {
		t.Errorf("claims %v", claims)
	}
	if _, ok := claims["act"]; ok {
		t.Errorf("an agent acting as itself carries act: %v", claims["act"])
	}

	t.Run("no scope asked: the registered scope", func(t *testing.T) {
		r := e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceB}})
		if r.Status != 200 || r.str("scope") != "tools.call tools.read" {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
		if claims := e.verify(r.str("access_token")); claims["aud"].([]any)[0] != resourceB {
			t.Errorf("aud %v", claims["aud"])
		}
	})
	t.Run("audience parameter", func(t *testing.T) {
		r := e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "audience": {resourceB}})
		if r.Status != 200 {
			t.Fatalf("got %d %v", r.Status, r.Body)
		}
	})
	t.Run("every answer is a fresh token", func(t *testing.T) {
		a, b := e.ccToken(ccAuth, nil), e.ccToken(ccAuth, nil)
		if e.verify(a)["jti"] == e.verify(b)["jti"] {
			t.Error("two token requests got the same jti: a revoked token could come back")
		}
	})
}

func TestClientCredentialsOneResource(t *testing.T) {
	e := newEnvOpts(t, envOptions{resources: []string{resourceA}})
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read"})
	r := e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}})
	if r.Status != 200 {
		t.Fatalf("got %d %v", r.Status, r.Body)
	}
	if aud := e.verify(r.str("access_token"))["aud"].([]any); aud[0] != resourceA {
		t.Errorf("aud %v, want the only resource", aud)
	}
}

func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "cc-jwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants, scope: "tools.read"})
	for _, aud := range []string{e.srv.URL, e.srv.URL + "/token"} {
		a := e.assertionFor("cc-jwt", e.key, func(c jwt.MapClaims) { c["aud"] = aud })
		r := e.post("/token", a, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}})
		if r.Status != 200 {
			t.Fatalf("aud %s: %d %v", aud, r.Status, r.Body)
		}
		if claims := e.verify(r.str("access_token")); claims["sub"] != "cc-jwt" {
			t.Errorf("sub %v", claims["sub"])
		}
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call"})
	e.register(agentSpec{id: "cc-only", secret: ccSecret, grants: []string{oauth.GrantTypeClientCredentials}, scope: "tools.read"})
	e.register(agentSpec{id: "no-grants", secret: ccSecret})
	e.register(agentSpec{id: "pending", secret: ccSecret, grants: ccGrants, status: agents.Pending})
	e.register(agentSpec{id: "suspended", secret: ccSecret, grants: ccGrants})
	if err := e.agents.Suspend(context.Background(), "suspended", "user:op", "test"); err != nil {
		t.Fatal(err)
	}
	e.register(agentSpec{id: "old-secret", secret: ccSecret, grants: ccGrants, expires: e.clock.Now().Add(-time.Second)})
	e.register(agentSpec{id: "pkjwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants})
	e.register(agentSpec{id: "pkjwt-with-secret", jwks: jwksOf(t, &e.key.PublicKey), secret: ccSecret, method: "private_key_jwt", grants: ccGrants})
	e.register(agentSpec{id: "public", secret: ccSecret, method: "none", grants: ccGrants})
	e.register(agentSpec{id: "with-secret", secret: ccSecret, grants: ccGrants})
	e.register(agentSpec{id: "no-scope", secret: ccSecret, grants: ccGrants})

	cc := func(kv ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
				continue
			}
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		code   string
	}{
		{"no client authentication", "none", cc(), 401, "invalid_client"},
		{"wrong secret", "basic cc wrong", cc(), 401, "invalid_client"},
		{"unknown client", "basic nobody " + ccSecret, cc(), 401, "invalid_client"},
		{"expired secret", "basic old-secret " + ccSecret, cc(), 401, "invalid_client"},
		{"private_key_jwt client uses a secret", "basic pkjwt-with-secret " + ccSecret, cc(), 401, "invalid_client"},
		{"secret client uses an assertion", e.assertionFor("with-secret", e.key, nil), cc(), 401, "invalid_client"},
		{"public client", "basic public " + ccSecret, cc(), 401, "invalid_client"},
		{"client_secret_post", "none", cc("client_id", "cc", "client_secret", ccSecret), 401, "invalid_client"},
		{"basic and client_secret", ccAuth, cc("client_secret", ccSecret), 400, "invalid_request"},
		{"client_id mismatch", ccAuth, cc("client_id", "cc-only"), 400, "invalid_request"},
		{"no grant_type", ccAuth, cc("grant_type", ""), 400, "invalid_request"},
		{"repeated grant_type", ccAuth, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, 400, "invalid_request"},
		{"password grant", ccAuth, cc("grant_type", "password"), 400, "unsupported_grant_type"},
		{"authorization_code grant", ccAuth, cc("grant_type", "authorization_code"), 400, "unsupported_grant_type"},
		{"refresh_token grant", ccAuth, cc("grant_type", "refresh_token"), 400, "unsupported_grant_type"},
		{"grant not registered", "basic cc-only " + ccSecret, url.Values{"grant_type": {oauth.GrantTypeTokenExchange}}, 400, "unauthorized_client"},
		{"no grant registered", "basic no-grants " + ccSecret, cc(), 400, "unauthorized_client"},
		{"configured CIBA client asks client_credentials", "secret", cc(), 400, "unauthorized_client"},
		{"pending agent", "basic pending " + ccSecret, cc(), 400, "unauthorized_client"},
		{"suspended agent", "basic suspended " + ccSecret, cc(), 400, "unauthorized_client"},
		{"unknown resource", ccAuth, cc("resource", "https://elsewhere.example/api"), 400, "invalid_target"},
		{"unknown audience", ccAuth, cc("resource", "", "audience", "elsewhere"), 400, "invalid_target"},
		{"resource with fragment", ccAuth, cc("resource", resourceA+"#x"), 400, "invalid_target"},
		{"relative resource", ccAuth, cc("resource", "/mcp"), 400, "invalid_target"},
		{"two resources", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA, resourceB}}, 400, "invalid_target"},
		{"resource and another audience", ccAuth, cc("audience", resourceB), 400, "invalid_target"},
		{"no resource with several configured", ccAuth, cc("resource", ""), 400, "invalid_target"},
		{"scope wider than registered", ccAuth, cc("scope", "tools.read admin"), 400, "invalid_scope"},
		{"scope with a quote", ccAuth, cc("scope", `tools."read`), 400, "invalid_scope"},
		{"scope with double space", ccAuth, cc("scope", "tools.read  tools.call"), 400, "invalid_scope"},
		{"scope when none registered", "basic no-scope " + ccSecret, cc("scope", "tools.read"), 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.post("/token", tt.auth, tt.form), tt.status, tt.code)
		})
	}
	t.Run("suspended description", func(t *testing.T) {
		r := e.post("/token", "basic suspended "+ccSecret, cc())
		if r.str("error_description") != "the agent is suspended" {
			t.Errorf("description %q", r.str("error_description"))
		}
	})
	t.Run("basic challenge", func(t *testing.T) {
		r := e.post("/token", "basic cc wrong", cc())
		if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
	t.Run("not a form", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("cc", ccSecret)
		wantError(t, e.do(req), 400, "invalid_request")
	})
	t.Run("body too large", func(t *testing.T) {
		f := cc("scope", strings.Repeat("a", 70<<10))
		wantError(t, e.post("/token", ccAuth, f), 400, "invalid_request")
	})
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(e.srv.URL + "/token?grant_type=client_credentials")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /token: %d", resp.StatusCode)
		}
	})
}

func TestCIBAGrantUnderDispatcher(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "cc-only", secret: ccSecret, grants: []string{oauth.GrantTypeClientCredentials}})
	t.Run("an agent not registered for CIBA cannot open a request", func(t *testing.T) {
		wantError(t, e.post("/bc-authorize", "basic cc-only "+ccSecret, url.Values{"login_hint": {user}, "scope": {"openid"}}), 400, "unauthorized_client")
	})
	t.Run("a suspended configured client is refused", func(t *testing.T) {
		if err := e.agents.Register(context.Background(), agents.Agent{ClientID: secretClient, Status: agents.Active}); err != nil {
			t.Fatal(err)
		}
		id := e.authorize(nil)
		if err := e.agents.Suspend(context.Background(), secretClient, "user:op", "test"); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.token("secret", id), 400, "unauthorized_client")
		wantError(t, e.post("/bc-authorize", "secret", url.Values{"login_hint": {user}, "scope": {"openid"}}), 400, "unauthorized_client")
	})
}

func TestTokenEndpointMetadata(t *testing.T) {
	e := newEnv(t)
	m := e.te.Metadata()
	want := map[string]any{
		"token_endpoint":                                           e.srv.URL + "/token",
		"revocation_endpoint":                                      e.srv.URL + "/revoke",
		"introspection_endpoint":                                   e.srv.URL + "/introspect",
		"grant_types_supported":                                    []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange, oauth.GrantTypeCIBA},
		"token_endpoint_auth_methods_supported":                    []string{"private_key_jwt", "client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":               []string{"private_key_jwt", "client_secret_basic"},
		"introspection_endpoint_auth_methods_supported":            []string{"private_key_jwt", "client_secret_basic"},
		"token_endpoint_auth_signing_alg_values_supported":         []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"},
		"revocation_endpoint_auth_signing_alg_values_supported":    []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"},
		"introspection_endpoint_auth_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
}

func TestNewTokenEndpointConfigErrors(t *testing.T) {
	e := newEnv(t)
	good := func() oauth.TokenEndpointConfig {
		return oauth.TokenEndpointConfig{Issuer: "https://writ.example", Directory: e.dir, Minter: e.minter, Keys: e.keyring, Revocations: e.revs}
	}
	other, err := oauth.NewDirectory(oauth.DirectoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*oauth.TokenEndpointConfig)
	}{
		{"no issuer", func(c *oauth.TokenEndpointConfig) { c.Issuer = "" }},
		{"issuer not a URL", func(c *oauth.TokenEndpointConfig) { c.Issuer = "writ" }},
		{"no directory", func(c *oauth.TokenEndpointConfig) { c.Directory = nil }},
		{"no minter", func(c *oauth.TokenEndpointConfig) { c.Minter = nil }},
		{"no keys", func(c *oauth.TokenEndpointConfig) { c.Keys = nil }},
		{"no revocations", func(c *oauth.TokenEndpointConfig) { c.Revocations = nil }},
		{"negative TTL", func(c *oauth.TokenEndpointConfig) { c.Token.TokenTTL = -time.Second }},
		{"negative depth", func(c *oauth.TokenEndpointConfig) { c.Token.MaxDelegationDepth = -1 }},
		{"empty resource", func(c *oauth.TokenEndpointConfig) { c.Resources = []string{""} }},
		{"CIBA on another directory", func(c *oauth.TokenEndpointConfig) { c.CIBA = e.ciba; c.Directory = other }},
	}
	if _, err := oauth.NewTokenEndpoint(good()); err != nil {
		t.Fatalf("good configuration refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			if _, err := oauth.NewTokenEndpoint(cfg); err == nil {
				t.Fatal("NewTokenEndpoint accepted a bad configuration")
			}
		})
	}
}

// TestNoSecretsInLogs runs every endpoint's happy and refused paths and
// checks that no secret, token or client assertion reached the log.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call"})
	e.register(agentSpec{id: "cc-jwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants, scope: "tools.read tools.call"})
	var sensitive []string
	access := e.ccToken(ccAuth, nil)
	subject := e.idpToken(nil)
	assertion := e.assertionFor("cc-jwt", e.key, nil)
	sensitive = append(sensitive, ccSecret, access, subject, assertion)
	if r := e.exchange(assertion, subject, nil); r.Status != 200 {
		t.Fatalf("exchange: %d %v", r.Status, r.Body)
	} else {
		sensitive = append(sensitive, r.str("access_token"))
	}
	e.exchange(assertion, subject, nil) // replayed assertion
	e.exchange(ccAuth, e.idpToken(func(c jwt.MapClaims) { c["may_act"] = map[string]any{"sub": "other"} }), nil)
	e.post("/token", "basic cc wrong-"+ccSecret, url.Values{"grant_type": {"client_credentials"}})
	e.post("/introspect", ccAuth, url.Values{"token": {access}})
	e.post("/revoke", ccAuth, url.Values{"token": {access}})
	e.post("/revoke", ccAuth, url.Values{"token": {subject}})
	logs := e.logs.String()
	if !strings.Contains(logs, "token issued") || !strings.Contains(logs, "token revoked") {
		t.Fatalf("the endpoints logged too little to prove anything:\n%s", logs)
	}
	for _, s := range sensitive {
		if strings.Contains(logs, s) {
			t.Errorf("log output contains a secret or token (%d bytes)", len(s))
		}
		// A JWT's signature alone is as good as the token for a search.
		if i := strings.LastIndexByte(s, '.'); i > 0 && strings.Contains(logs, s[i+1:]) {
			t.Errorf("log output contains a token's signature")
		}
	}
}

type exampleKeys struct{}

func (exampleKeys) JWKS() []byte { return []byte(`{"keys":[]}`) }

type exampleRevocations struct{}

func (exampleRevocations) Revoke(context.Context, string, string, time.Time) error { return nil }
func (exampleRevocations) Revoked(string) bool                                     { return false }

func ExampleTokenEndpoint_Metadata() {
	dir, err := oauth.NewDirectory(oauth.DirectoryConfig{
		Clients: []oauth.Client{{
			ID:         "agent-3",
			SecretHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", // SHA-256 of "test"
			GrantTypes: []string{oauth.GrantTypeClientCredentials},
			Scope:      "tools.read",
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	te, err := oauth.NewTokenEndpoint(oauth.TokenEndpointConfig{
		Issuer:      "https://writ.example",
		Directory:   dir,
		Minter:      nopMinter{},
		Keys:        exampleKeys{},
		Revocations: exampleRevocations{},
		Resources:   []string{"https://mcp.example/mcp"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	te.Routes(mux) // POST /token, /revoke, /introspect

	m := te.Metadata()
	fmt.Println(m["token_endpoint"])
	fmt.Println(m["grant_types_supported"])
	fmt.Println(m["token_endpoint_auth_methods_supported"])
	// Output:
	// https://writ.example/token
	// [client_credentials]
	// [client_secret_basic]
}
