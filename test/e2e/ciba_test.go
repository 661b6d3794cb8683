package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/test/writtest"
)

// TestCIBAThroughTheBinary: a CIBA client configured in writ.yaml starts an
// approval at /bc-authorize, polls /token (authorization_pending), the user
// approves through the API, and the token it then receives verifies against
// writ's JWKS and names the approval.
func TestCIBAThroughTheBinary(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	const secret = "ciba-client-secret-0123456789abcdef"
	sum := sha256.Sum256([]byte(secret))
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp},
		Config: "approvals:\n  ciba:\n    clients:\n      - client_id: billing-agent\n        secret_sha256: " + hex.EncodeToString(sum[:]) + "\n"})

	post := func(path string, form url.Values) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+w.API+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("billing-agent", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %s", path, raw)
		}
		return resp.StatusCode, body
	}

	status, started := post("/bc-authorize", url.Values{"scope": {"openid payments"}, "login_hint": {"alice"}, "binding_message": {"Pay invoice 42?"}})
	id, _ := started["auth_req_id"].(string)
	if status != 200 || id == "" || started["expires_in"] == nil || started["interval"] == nil {
		t.Fatalf("bc-authorize: %d %v", status, started)
	}
	poll := url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {id}}
	if status, body := post("/token", poll); status != 400 || body["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", status, body)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+w.API+"/approvals/"+id+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+idp.Sign(t, jwt.MapClaims{"sub": "alice"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}

	// Within the interval, but no longer pending: slow_down applies only to
	// pending requests, so the grant is answered at once.
	status, granted := post("/token", poll)
	token, _ := granted["access_token"].(string)
	if status != 200 || token == "" || granted["token_type"] != "Bearer" {
		t.Fatalf("token: %d %v", status, granted)
	}
	claims := verifyWithJWKS(t, w.API, token)
	if claims["sub"] != "alice" || claims["approval_id"] != id {
		t.Errorf("claims %v", claims)
	}
	if status, again := post("/token", poll); status != 400 || again["error"] != "invalid_grant" {
		t.Errorf("second redemption: %d %v", status, again)
	}
}
