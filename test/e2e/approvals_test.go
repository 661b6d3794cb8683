package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/test/writtest"
)

// TestApprovalEndToEnd: a high-sensitivity call waits for a human; the
// user approves it through the API as a real HTTP client; the retried call
// passes once with a writ token naming the approval; the next retry waits
// again. The agent cannot approve its own request.
func TestApprovalEndToEnd(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	agentToken := idp.Delegated(t, "alice", "pay-bot", "tenant-a")
	route := map[string]string{"resource": "mcp://payments", "tenant": "tenant-a", "sensitivity": "high", "mcp": "true"}
	refund := func() (bool, string, map[string]any) {
		t.Helper()
		resp, err := w.Check(t.Context(), writtest.ToolCall("refund", map[string]any{"amount": 120}, agentToken, route))
		if err != nil {
			t.Fatal(err)
		}
		if ok := resp.GetOkResponse(); ok != nil {
			return true, strings.TrimPrefix(writtest.Header(resp, "authorization"), "Bearer "), nil
		}
		var body map[string]any
		json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
		if writtest.Header(resp, "retry-after") == "" && body["error"] == "approval_pending" {
			t.Error("approval_pending without Retry-After")
		}
		return false, "", body
	}

	allowed, _, pending := refund()
	id, _ := pending["auth_req_id"].(string)
	if allowed || pending["error"] != "approval_pending" || id == "" {
		t.Fatalf("first call: allowed=%t %v", allowed, pending)
	}

	decide := func(token, verb string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+w.API+"/approvals/"+id+"/"+verb, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The agent acting as itself may not approve.
	agentAlone := idp.Sign(t, jwt.MapClaims{"sub": "pay-bot", "client_id": "pay-bot"})
	if status, body := decide(agentAlone, "approve"); status != 403 {
		t.Fatalf("the agent approved its own request: %d %s", status, body)
	}
	// Someone else may not either.
	if status, body := decide(idp.Sign(t, jwt.MapClaims{"sub": "mallory"}), "approve"); status != 403 {
		t.Fatalf("a stranger approved: %d %s", status, body)
	}
	// No token: 401.
	if status, _ := decide("", "approve"); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	// The user approves.
	if status, body := decide(idp.Sign(t, jwt.MapClaims{"sub": "alice"}), "approve"); status != 200 {
		t.Fatalf("approve: %d %s", status, body)
	}

	allowed, minted, _ := refund()
	if !allowed {
		t.Fatal("the approved call did not pass")
	}
	claims := verifyWithJWKS(t, w.API, minted)
	if claims["approval_id"] != id {
		t.Errorf("approval_id = %v, want %s", claims["approval_id"], id)
	}
	allowed, _, again := refund()
	if allowed || again["error"] != "approval_pending" || again["auth_req_id"] == id {
		t.Fatalf("second retry: allowed=%t %v", allowed, again)
	}

	if err := w.Terminate(t); err != nil {
		t.Fatal(err)
	}
	out, err := w.Run(t, "audit", "verify", "--data-dir", w.DataDir)
	if err != nil {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	out, err = w.Run(t, "approvals", "show", "--data-dir", w.DataDir, id)
	if err != nil || !strings.Contains(out, "user:alice") || !strings.Contains(out, "consumed") {
		t.Errorf("approvals show: %v\n%s", err, out)
	}
}
