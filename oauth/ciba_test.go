package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/oauth"
)

func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("got %d %v, want %d %s", r.Status, r.Body, status, code)
	}
	if r.str("error_description") == "" {
		t.Errorf("no error_description in %v", r.Body)
	}
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	want := map[string]any{
		"issuer":                              e.srv.URL,
		"jwks_uri":                            e.srv.URL + "/.well-known/jwks.json",
		"token_endpoint":                      e.srv.URL + "/token",
		"backchannel_authentication_endpoint": e.srv.URL + "/bc-authorize",
		"backchannel_token_delivery_modes_supported":       []string{"poll", "ping"},
		"backchannel_user_code_parameter_supported":        false,
		"grant_types_supported":                            []string{oauth.GrantTypeCIBA},
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt", "client_secret_basic"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"},
		"scopes_supported":                                 []string{"openid"},
	}
	if diff := cmp.Diff(want, e.ciba.Metadata()); diff != "" {
		t.Errorf("CIBA metadata (-want +got):\n%s", diff)
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if path == "/.well-known/oauth-authorization-server" && resp.StatusCode != http.StatusNotFound {
			t.Errorf("CIBA still serves %s: %d", path, resp.StatusCode)
		}
	}
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t)
	ok := func() url.Values { return url.Values{"login_hint": {user}, "scope": {"openid"}} }
	with := func(k, v string) url.Values { f := ok(); f.Set(k, v); return f }
	without := func(k string) url.Values { f := ok(); f.Del(k); return f }
	long := strings.Repeat("x", oauth.MaxBindingMessage+1)
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		code   string
	}{
		{"no client authentication", "none", ok(), 401, "invalid_client"},
		{"wrong secret", "bad-secret", ok(), 401, "invalid_client"},
		{"client_id mismatch", "secret", with("client_id", jwtClient), 400, "invalid_request"},
		{"no hint", "secret", without("login_hint"), 400, "invalid_request"},
		{"two hints", "secret", with("id_token_hint", "eyJ.x.y"), 400, "invalid_request"},
		{"id_token_hint only", "secret", url.Values{"id_token_hint": {"eyJ.x.y"}, "scope": {"openid"}}, 400, "invalid_request"},
		{"login_hint_token only", "secret", url.Values{"login_hint_token": {"eyJ.x.y"}, "scope": {"openid"}}, 400, "invalid_request"},
		{"no scope", "secret", without("scope"), 400, "invalid_request"},
		{"scope without openid", "secret", with("scope", "payments"), 400, "invalid_scope"},
		{"requested_expiry zero", "secret", with("requested_expiry", "0"), 400, "invalid_request"},
		{"requested_expiry negative", "secret", with("requested_expiry", "-5"), 400, "invalid_request"},
		{"requested_expiry not a number", "secret", with("requested_expiry", "soon"), 400, "invalid_request"},
		{"binding_message too long", "secret", with("binding_message", long), 400, "invalid_binding_message"},
		{"binding_message control character", "secret", with("binding_message", "a\nb"), 400, "invalid_binding_message"},
		{"authorization_details not JSON", "secret", with("authorization_details", "{"), 400, "invalid_authorization_details"},
		{"authorization_details object", "secret", with("authorization_details", `{"type":"payment"}`), 400, "invalid_authorization_details"},
		{"authorization_details empty", "secret", with("authorization_details", `[]`), 400, "invalid_authorization_details"},
		{"authorization_details without type", "secret", with("authorization_details", `[{"amount":1}]`), 400, "invalid_authorization_details"},
		{"authorization_details non-object", "secret", with("authorization_details", `["payment"]`), 400, "invalid_authorization_details"},
		{"authorization_details type not string", "secret", with("authorization_details", `[{"type":7}]`), 400, "invalid_authorization_details"},
		{"user_code", "secret", with("user_code", "1234"), 400, "invalid_request"},
		{"request object", "secret", with("request", "eyJ.x.y"), 400, "invalid_request"},
		{"ping without client_notification_token", "ping", ok(), 400, "invalid_request"},
		{"ping with malformed client_notification_token", "ping", with("client_notification_token", "a b"), 400, "invalid_request"},
		{"repeated parameter", "secret", url.Values{"login_hint": {user, "user-8"}, "scope": {"openid"}}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.post("/bc-authorize", tt.auth, tt.form), tt.status, tt.code)
		})
	}
	t.Run("basic challenge", func(t *testing.T) {
		r := e.post("/bc-authorize", "bad-secret", ok())
		if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
	t.Run("not a form", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/bc-authorize", strings.NewReader(`{"login_hint":"u"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(secretClient, secret)
		wantError(t, e.do(req), 400, "invalid_request")
	})
	t.Run("nothing opened", func(t *testing.T) {
		rs, err := e.store.List(context.Background(), approvals.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 0 {
			t.Errorf("rejected requests opened %d approval requests", len(rs))
		}
	})
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	id := e.authorize(nil)
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		code   string
	}{
		{"no client authentication", "none", url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {id}}, 401, "invalid_client"},
		{"wrong secret", "bad-secret", url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {id}}, 401, "invalid_client"},
		{"other grant", "secret", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, 400, "unsupported_grant_type"},
		{"no grant_type", "secret", url.Values{"auth_req_id": {id}}, 400, "invalid_request"},
		{"no auth_req_id", "secret", url.Values{"grant_type": {oauth.GrantTypeCIBA}}, 400, "invalid_request"},
		{"unknown auth_req_id", "secret", url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {"nope"}}, 400, "invalid_grant"},
		{"another client's auth_req_id", "ping", url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {id}}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.post("/token", tt.auth, tt.form), tt.status, tt.code)
		})
	}
}

func TestPollFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	details := `[{"type":"payment_initiation","amount":{"value":"120.00","currency":"EUR"},"creditor":"ACME"}]`
	r := e.post("/bc-authorize", "secret", url.Values{
		"login_hint": {user}, "scope": {"openid payments"}, "binding_message": {"Refund 120 EUR to ACME?"},
		"requested_expiry": {"120"}, "authorization_details": {details},
	})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %v", r.Status, r.Body)
	}
	id := r.str("auth_req_id")
	if len(id) < 22 || r.Body["expires_in"] != 120.0 || r.Body["interval"] != 5.0 {
		t.Fatalf("bc-authorize answer %v", r.Body)
	}
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	req, err := e.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	const canonical = `[{"amount":{"currency":"EUR","value":"120.00"},"creditor":"ACME","type":"payment_initiation"}]`
	if req.Call.User != user || req.Call.Agent != secretClient || req.Call.Action != "ciba openid payments" ||
		req.Call.ArgumentsSHA256 != sha256Hex(canonical) || req.BindingMessage != "Refund 120 EUR to ACME?" {
		t.Fatalf("approval request call = %+v, binding %q", req.Call, req.BindingMessage)
	}

	wantError(t, e.token("secret", id), 400, "authorization_pending")
	e.clock.Advance(5 * time.Second)
	wantError(t, e.token("secret", id), 400, "authorization_pending")

	if err := e.store.Approve(ctx, id, "user:"+user); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	tok := e.token("secret", id)
	if tok.Status != 200 {
		t.Fatalf("token: %d %v", tok.Status, tok.Body)
	}
	if tok.str("token_type") != "Bearer" || tok.Body["expires_in"] != 300.0 {
		t.Errorf("token answer %v", tok.Body)
	}
	gotDetails, _ := json.Marshal(tok.Body["authorization_details"])
	if string(gotDetails) != canonical {
		t.Errorf("authorization_details = %s, want %s", gotDetails, canonical)
	}
	claims := e.verify(tok.str("access_token"))
	if claims["sub"] != user || claims["client_id"] != secretClient || claims["approval_id"] != id ||
		claims["scope"] != "openid payments" || claims["iss"] != e.srv.URL {
		t.Errorf("claims = %v", claims)
	}
	if act, _ := claims["act"].(map[string]any); act["sub"] != secretClient {
		t.Errorf("act = %v, want sub %s", claims["act"], secretClient)
	}

	e.clock.Advance(5 * time.Second)
	wantError(t, e.token("secret", id), 400, "invalid_grant")
	if req, _ := e.store.Get(ctx, id); req.Status != approvals.Consumed || len(req.ConsumedBy) != 1 {
		t.Errorf("after redemption: status %s, consumed by %v", req.Status, req.ConsumedBy)
	}
}

func TestIdenticalRequestsAreSeparate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.authorize(nil), e.authorize(nil)
	if a == b {
		t.Fatal("two backchannel requests share one auth_req_id")
	}
	if err := e.store.Approve(ctx, a, "user:"+user); err != nil {
		t.Fatal(err)
	}
	// Opening a third identical request must not use a's approval.
	c := e.authorize(nil)
	if tok := e.token("secret", a); tok.Status != 200 {
		t.Fatalf("token for approved request: %d %v", tok.Status, tok.Body)
	}
	wantError(t, e.token("secret", b), 400, "authorization_pending")
	wantError(t, e.token("secret", c), 400, "authorization_pending")
}

func TestDenied(t *testing.T) {
	e := newEnv(t)
	id := e.authorize(nil)
	if err := e.store.Deny(context.Background(), id, "user:"+user); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.token("secret", id), 400, "access_denied")
}

func TestExpired(t *testing.T) {
	for _, decided := range []bool{false, true} {
		e := newEnv(t)
		id := e.authorize(url.Values{"requested_expiry": {"60"}})
		if decided {
			if err := e.store.Approve(context.Background(), id, "user:"+user); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Advance(61 * time.Second)
		wantError(t, e.token("secret", id), 400, "expired_token")
	}
}

func TestRequestedExpiryCapped(t *testing.T) {
	e := newEnv(t)
	r := e.post("/bc-authorize", "secret", url.Values{"login_hint": {user}, "scope": {"openid"}, "requested_expiry": {"999999"}})
	if r.Status != 200 || r.Body["expires_in"] != float64(oauth.DefaultMaxExpiry/time.Second) {
		t.Fatalf("got %d %v", r.Status, r.Body)
	}
	r = e.post("/bc-authorize", "secret", url.Values{"login_hint": {user}, "scope": {"openid"}})
	if r.Status != 200 || r.Body["expires_in"] != float64(oauth.DefaultExpiry/time.Second) {
		t.Fatalf("got %d %v", r.Status, r.Body)
	}
}

func TestSlowDown(t *testing.T) {
	e := newEnv(t)
	id := e.authorize(nil)
	wantError(t, e.token("secret", id), 400, "authorization_pending")
	e.clock.Advance(4 * time.Second)
	wantError(t, e.token("secret", id), 400, "slow_down") // interval now 10 s
	e.clock.Advance(9 * time.Second)
	wantError(t, e.token("secret", id), 400, "slow_down") // interval now 15 s
	e.clock.Advance(15 * time.Second)
	wantError(t, e.token("secret", id), 400, "authorization_pending")
	e.clock.Advance(14 * time.Second)
	wantError(t, e.token("secret", id), 400, "slow_down")
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	form := func() url.Values { return url.Values{"login_hint": {user}, "scope": {"openid"}} }
	t.Run("accepted", func(t *testing.T) {
		for _, aud := range []string{e.srv.URL, e.srv.URL + "/token", e.srv.URL + "/bc-authorize"} {
			a := e.assertion(func(c jwt.MapClaims) { c["aud"] = aud })
			if r := e.post("/bc-authorize", a, form()); r.Status != 200 {
				t.Errorf("aud %s: %d %v", aud, r.Status, r.Body)
			}
		}
	})
	t.Run("replayed jti", func(t *testing.T) {
		a := e.assertion(nil)
		if r := e.post("/bc-authorize", a, form()); r.Status != 200 {
			t.Fatalf("first use: %d %v", r.Status, r.Body)
		}
		wantError(t, e.post("/bc-authorize", a, form()), 401, "invalid_client")
		wantError(t, e.post("/token", a, url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {"x"}}), 401, "invalid_client")
	})
	bad := []struct {
		name string
		edit func(jwt.MapClaims)
	}{
		{"wrong audience", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }},
		{"sub is not the client", func(c jwt.MapClaims) { c["sub"] = "someone" }},
		{"unknown issuer", func(c jwt.MapClaims) { c["iss"], c["sub"] = "stranger", "stranger" }},
		{"expired", func(c jwt.MapClaims) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() }},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }},
		{"no jti", func(c jwt.MapClaims) { delete(c, "jti") }},
		{"lives too long", func(c jwt.MapClaims) { c["exp"] = e.clock.Now().Add(time.Hour).Unix() }},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.post("/bc-authorize", e.assertion(tt.edit), form()), 401, "invalid_client")
		})
	}
	t.Run("secret client cannot use an assertion signed by another key", func(t *testing.T) {
		a := e.assertion(func(c jwt.MapClaims) { c["iss"], c["sub"] = secretClient, secretClient })
		wantError(t, e.post("/bc-authorize", a, form()), 401, "invalid_client")
	})
	t.Run("wrong assertion type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/bc-authorize", strings.NewReader(url.Values{
			"login_hint": {user}, "scope": {"openid"}, "client_assertion": {e.assertion(nil)},
			"client_assertion_type": {"urn:example:other"},
		}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, e.do(req), 401, "invalid_client")
	})
	t.Run("full flow", func(t *testing.T) {
		id := e.authorize(url.Values{"_auth": {e.assertion(nil)}})
		if err := e.store.Approve(context.Background(), id, "user:"+user); err != nil {
			t.Fatal(err)
		}
		if r := e.token(e.assertion(nil), id); r.Status != 200 {
			t.Fatalf("token: %d %v", r.Status, r.Body)
		}
	})
}

func TestPing(t *testing.T) {
	for _, decide := range []string{"approve", "deny"} {
		t.Run(decide, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			r := e.post("/bc-authorize", "ping", url.Values{
				"login_hint": {user}, "scope": {"openid"}, "client_notification_token": {"notify-me.123"},
			})
			if r.Status != 200 {
				t.Fatalf("bc-authorize: %d %v", r.Status, r.Body)
			}
			id := r.str("auth_req_id")
			select {
			case <-e.pings:
				t.Fatal("ping before a decision")
			default:
			}
			var err error
			if decide == "approve" {
				err = e.store.Approve(ctx, id, "user:"+user)
			} else {
				err = e.store.Deny(ctx, id, "user:"+user)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := <-e.pings
			body := <-e.pingBody
			if got.Method != http.MethodPost || got.URL.Path != "/cb" || got.Header.Get("Authorization") != "Bearer notify-me.123" ||
				got.Header.Get("Content-Type") != "application/json" {
				t.Errorf("ping %s %s, headers %v", got.Method, got.URL.Path, got.Header)
			}
			var pb map[string]string
			if err := json.Unmarshal([]byte(body), &pb); err != nil || len(pb) != 1 || pb["auth_req_id"] != id {
				t.Errorf("ping body %s", body)
			}
			tok := e.token("ping", id)
			if decide == "approve" && tok.Status != 200 {
				t.Errorf("token after ping: %d %v", tok.Status, tok.Body)
			}
			if decide == "deny" {
				wantError(t, tok, 400, "access_denied")
			}
		})
	}
}

func TestNewCIBAConfigErrors(t *testing.T) {
	e := newEnv(t)
	good := oauth.Client{ID: "a", SecretHash: sha256Hex("x")}
	tests := []struct {
		name string
		cfg  oauth.CIBAConfig
	}{
		{"no issuer", oauth.CIBAConfig{Clients: []oauth.Client{good}}},
		{"no clients", oauth.CIBAConfig{Issuer: "https://writ.example"}},
		{"client without credentials", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{{ID: "a"}}}},
		{"bad secret hash", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{{ID: "a", SecretHash: "abc"}}}},
		{"bad JWKS", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{{ID: "a", JWKS: []byte("{")}}}},
		{"push mode", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{{ID: "a", SecretHash: sha256Hex("x"), DeliveryMode: "push"}}}},
		{"ping over http", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{{ID: "a", SecretHash: sha256Hex("x"), DeliveryMode: "ping", NotificationEndpoint: "http://client.example/cb"}}}},
		{"duplicate client", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{good, good}}},
		{"default above max", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{good}, DefaultExpiry: time.Hour, MaxExpiry: time.Minute}},
		{"fractional interval", oauth.CIBAConfig{Issuer: "https://writ.example", Clients: []oauth.Client{good}, Interval: 1500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := oauth.NewCIBA(tt.cfg, e.store, nopMinter{}, nil); err == nil {
				t.Fatal("NewCIBA accepted a bad configuration")
			}
		})
	}
}
