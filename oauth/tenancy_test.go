package oauth_test

import (
	"net/url"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/oauth"
)

// What a user is asked to approve through CIBA never reaches past the
// scope the agent registered; openid names the user and always passes.
func TestCIBAScopeWithinRegisteredScope(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "ciba-agent", secret: ccSecret, grants: []string{oauth.GrantTypeCIBA}, scope: "tools.read"})
	auth := "basic ciba-agent " + ccSecret
	wantError(t, e.post("/bc-authorize", auth, url.Values{"login_hint": {user}, "scope": {"openid payments.admin"}}), 400, "invalid_scope")
	if r := e.post("/bc-authorize", auth, url.Values{"login_hint": {user}, "scope": {"openid tools.read"}}); r.Status != 200 || r.str("auth_req_id") == "" {
		t.Fatalf("scope within the registration: %d %v", r.Status, r.Body)
	}
}

// An agent of one tenant never acts for a user of another.
func TestTokenExchangeTenant(t *testing.T) {
	e := exchangeEnv(t, envOptions{})
	other := e.idpToken(func(c jwt.MapClaims) { c["tenant"] = "globex" })
	wantError(t, e.exchange(ccAuth, other, nil), 400, "invalid_request")
	// An agent registered without a tenant (cc2) serves users of any tenant.
	if r := e.exchange("basic cc2 "+ccSecret, other, nil); r.Status != 200 {
		t.Fatalf("tenantless agent: %d %v", r.Status, r.Body)
	}
	if r := e.exchange(ccAuth, e.idpToken(nil), nil); r.Status != 200 {
		t.Fatalf("same tenant: %d %v", r.Status, r.Body)
	}
}
