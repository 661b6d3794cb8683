package oauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/approvals"
)

// interopDir holds the openid-client driver (test/interop/ciba).
var interopDir = filepath.Join("..", "test", "interop", "ciba")

// TestOpenIDClientInterop runs panva's openid-client v6 CIBA poll flow
// against writ: discovery, initiateBackchannelAuthentication and
// pollBackchannelAuthenticationGrant, once approved through the store after
// the client saw authorization_pending, once denied.
func TestOpenIDClientInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "openid-client")); err != nil {
		t.Skip("openid-client is not installed: run npm ci --prefix test/interop/ciba")
	}
	e := newEnvWith(t, true, time.Second)
	ctx := context.Background()

	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	x, y, d := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	e.key.X.FillBytes(x)
	e.key.Y.FillBytes(y)
	e.key.D.FillBytes(d)
	jwk, err := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "kid": "agent-key", "x": b64(x), "y": b64(y), "d": b64(d)})
	if err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, "run.mjs")
	cmd.Dir = interopDir
	cmd.Env = append(os.Environ(),
		"WRIT_ISSUER="+e.srv.URL,
		"WRIT_SECRET_CLIENT="+secretClient, "WRIT_SECRET="+secret,
		"WRIT_JWT_CLIENT="+jwtClient, "WRIT_JWT_KEY="+string(jwk),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	type line struct {
		Run, Step, Error     string
		AuthReqID            string          `json:"auth_req_id"`
		AccessToken          string          `json:"access_token"`
		TokenType            string          `json:"token_type"`
		AuthorizationDetails json.RawMessage `json:"authorization_details"`
	}
	ids := map[string]string{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("driver wrote %q", sc.Text())
		}
		t.Logf("openid-client: %s %s", l.Run, l.Step)
		seen[l.Run+" "+l.Step] = true
		switch l.Run + " " + l.Step {
		case "approve initiated", "deny initiated":
			ids[l.Run] = l.AuthReqID
		case "approve pending":
			if err := e.store.Approve(ctx, ids["approve"], "user:user-approve"); err != nil {
				t.Fatal(err)
			}
		case "deny pending":
			if err := e.store.Deny(ctx, ids["deny"], "user:user-deny"); err != nil {
				t.Fatal(err)
			}
		case "approve token":
			claims := e.verify(l.AccessToken)
			if claims["sub"] != "user-approve" || claims["client_id"] != jwtClient || claims["approval_id"] != ids["approve"] {
				t.Errorf("token claims %v", claims)
			}
			const canonical = `[{"amount":{"currency":"EUR","value":"120.00"},"creditor":"ACME","type":"payment_initiation"}]`
			if l.TokenType != "bearer" && l.TokenType != "Bearer" || string(l.AuthorizationDetails) != canonical {
				t.Errorf("token_type %q, authorization_details %s", l.TokenType, l.AuthorizationDetails)
			}
		case "deny error":
			if l.Error != "access_denied" {
				t.Errorf("denied run ended with %q, want access_denied", l.Error)
			}
		case " failed":
			t.Errorf("driver failed: %s", l.Error)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node run.mjs: %v\n%s", err, stderr.String())
	}
	for _, s := range []string{"approve pending", "approve token", "deny pending", "deny error", " done"} {
		if !seen[s] {
			t.Errorf("driver never reported %q", s)
		}
	}
	if r, err := e.store.Get(ctx, ids["approve"]); err != nil || r.Status != approvals.Consumed {
		t.Errorf("approved request after the flow: %v, %v", r.Status, err)
	}
}
