package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/approvals"
)

// tokens is an Authenticator over a fixed table of bearer tokens.
type tokens map[string]approvals.Approver

func (t tokens) Authenticate(_ context.Context, bearer string) (approvals.Approver, error) {
	a, ok := t[bearer]
	if !ok {
		return approvals.Approver{}, errors.New("unknown token")
	}
	return a, nil
}

var approverTokens = tokens{
	"tok-alice": {Subject: "alice", Groups: []string{"finance"}},          // group:finance
	"tok-bob":   {Subject: "bob", Groups: []string{"engineering"}},        // nobody's approver
	"tok-user":  {Subject: "user-7"},                                      // the call's user
	"tok-agent": {Subject: "agent-3", Groups: []string{"finance"}},        // the call's agent, even in the group
	"tok-carol": {Subject: "carol", Roles: []string{"payments-approver"}}, // role:payments-approver
	"tok-dave":  {Subject: "dave", Groups: []string{"finance-readonly"}},  // a near miss
	"tok-erin":  {Subject: "erin", Roles: []string{"admin"}},
}

func apiDo(t *testing.T, h http.Handler, method, path, token, contentType, body string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return res, out
}

func errBody(code, desc string) map[string]any {
	return map[string]any{"error": code, "error_description": desc}
}

func TestHandlerErrors(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	req := once
	req.Approvers = []string{"group:finance", "role:payments-approver", "user:agent-3"}
	res := f.gate(t, refund(), req)
	h := approvals.Handler(f.s, approverTokens, approvals.HandlerOptions{MaxBodyBytes: 64})
	base := "/approvals/" + res.ID

	tests := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		want                                   map[string]any
		challenge                              string
	}{
		{"no token", "GET", "/approvals", "", "", "", 401, errBody("invalid_request", "a bearer token is required"), `Bearer realm="writ"`},
		{"bad token", "POST", base + "/approve", "nope", "", "", 401, errBody("invalid_token", "the bearer token is not valid"),
			`Bearer realm="writ", error="invalid_token", error_description="the bearer token is not valid"`},
		{"unknown id", "GET", "/approvals/AAAA", "tok-alice", "", "", 404, errBody("not_found", "no such approval request"), ""},
		{"unknown id approve", "POST", "/approvals/AAAA/approve", "tok-alice", "", "", 404, errBody("not_found", "no such approval request"), ""},
		{"malformed id", "GET", "/approvals/a%20b", "tok-alice", "", "", 404, errBody("not_found", "no such resource"), ""},
		{"unknown action", "POST", base + "/escalate", "tok-alice", "", "", 404, errBody("not_found", "no such resource"), ""},
		{"wrong method", "GET", base + "/approve", "tok-alice", "", "", 405, errBody("invalid_request", "method not allowed"), ""},
		{"not an approver", "POST", base + "/approve", "tok-bob", "", "", 403, errBody("access_denied", "you may not decide this approval request"), ""},
		{"near-miss group", "POST", base + "/approve", "tok-dave", "", "", 403, errBody("access_denied", "you may not decide this approval request"), ""},
		{"not an approver reads", "GET", base, "tok-bob", "", "", 403, errBody("access_denied", "you may not decide this approval request"), ""},
		{"agent approves itself", "POST", base + "/approve", "tok-agent", "", "", 403, errBody("access_denied", "an agent cannot decide its own request"), ""},
		{"agent denies itself", "POST", base + "/deny", "tok-agent", "application/json", "{}", 403, errBody("access_denied", "an agent cannot decide its own request"), ""},
		{"form body", "POST", base + "/approve", "tok-alice", "application/x-www-form-urlencoded", "a=b", 415, errBody("invalid_request", "a request body must be application/json"), ""},
		{"untyped body", "POST", base + "/approve", "tok-alice", "", "{}", 415, errBody("invalid_request", "a request body must be application/json"), ""},
		{"not an object", "POST", base + "/approve", "tok-alice", "application/json", "[1]", 400, errBody("invalid_request", "the request body must be a JSON object"), ""},
		{"too large", "POST", base + "/approve", "tok-alice", "application/json", `{"reason":"` + strings.Repeat("x", 100) + `"}`, 413, errBody("invalid_request", "request body too large"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := apiDo(t, h, tt.method, tt.path, tt.token, tt.ctype, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
		})
	}
	// None of the refusals decided anything.
	r, err := f.s.Get(context.Background(), res.ID)
	if err != nil || r.Status != approvals.Pending {
		t.Fatalf("after refusals: %v, %v; want pending", r.Status, err)
	}
}

func TestHandlerApproveThenConflict(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	h := approvals.Handler(f.s, approverTokens, approvals.HandlerOptions{})

	resp, body := apiDo(t, h, "POST", "/approvals/"+res.ID+"/approve", "tok-alice", "application/json; charset=utf-8", `{"reason":"ok"}`)
	if resp.StatusCode != 200 || body["status"] != "approved" || body["approver"] != "user:alice" || body["id"] != res.ID {
		t.Fatalf("approve: %d %v", resp.StatusCode, body)
	}
	resp, body = apiDo(t, h, "POST", "/approvals/"+res.ID+"/deny", "tok-alice", "", "")
	if resp.StatusCode != 409 || !cmp.Equal(body, errBody("not_pending", "the approval request is no longer pending")) {
		t.Fatalf("second decision: %d %v", resp.StatusCode, body)
	}
	// The identical call now passes, naming the approver.
	c := refund()
	c.DecisionID = "dec-2"
	got := f.gate(t, c, once)
	if got.Status != approvals.Approved || got.ID != res.ID || got.Approver != "user:alice" {
		t.Fatalf("retry: %+v", got)
	}
}

func TestHandlerWhoMayDecide(t *testing.T) {
	tests := []struct {
		token     string
		approvers []string
		action    string
		want      approvals.Status
	}{
		{"tok-user", nil, "approve", approvals.Approved}, // the user, for their own agent
		{"tok-user", nil, "deny", approvals.Denied},
		{"tok-alice", []string{"group:finance"}, "deny", approvals.Denied},
		{"tok-carol", []string{"role:payments-approver"}, "approve", approvals.Approved},
		{"tok-bob", []string{"user:bob"}, "approve", approvals.Approved},
	}
	for _, tt := range tests {
		t.Run(tt.token+"/"+tt.action, func(t *testing.T) {
			f := newFixture(t, approvals.Options{})
			req := once
			req.Approvers = tt.approvers
			res := f.gate(t, refund(), req)
			h := approvals.Handler(f.s, approverTokens, approvals.HandlerOptions{})
			resp, body := apiDo(t, h, "POST", "/approvals/"+res.ID+"/"+tt.action, tt.token, "", "")
			if resp.StatusCode != 200 || body["status"] != string(tt.want) {
				t.Fatalf("%d %v", resp.StatusCode, body)
			}
			r, err := f.s.Get(context.Background(), res.ID)
			if err != nil || r.Status != tt.want || r.Approver != "user:"+approverTokens[tt.token].Subject {
				t.Fatalf("stored: %+v %v", r, err)
			}
		})
	}
}

func TestHandlerList(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	forFinance := f.gate(t, refund(), once)
	other := refund()
	other.User, other.ArgumentsSHA256 = "user-9", digestB
	forUser9 := f.gate(t, other, approvals.Requirement{BindingMessage: "Delete repo?", Approvers: []string{"role:admin"}})
	h := approvals.Handler(f.s, approverTokens, approvals.HandlerOptions{})

	ids := func(token string) []string {
		resp, body := apiDo(t, h, "GET", "/approvals", token, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("list as %s: %d %v", token, resp.StatusCode, body)
		}
		out := []string{}
		for _, v := range body["approvals"].([]any) {
			out = append(out, v.(map[string]any)["id"].(string))
		}
		return out
	}
	for token, want := range map[string][]string{
		"tok-alice": {forFinance.ID},
		"tok-user":  {forFinance.ID},
		"tok-bob":   {},
		"tok-erin":  {forUser9.ID},
		"tok-agent": {}, // never its own
	} {
		if diff := cmp.Diff(want, ids(token)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", token, diff)
		}
	}

	resp, body := apiDo(t, h, "GET", "/approvals/"+forFinance.ID, "tok-alice", "", "")
	want := map[string]any{
		"id": forFinance.ID, "status": "pending", "binding_message": once.BindingMessage, "user": "user-7", "agent": "agent-3",
		"tenant": "tenant-a", "resource": "mcp://payments", "tool": "refund", "arguments_sha256": digestA, "arguments": `{"amount":120,"memo":"<b>ACME</b>"}`,
		"approvers": []any{"group:finance"}, "created_at": "2026-03-01T12:00:00Z", "expires_at": "2026-03-01T12:10:00Z",
		"uses": 1.0, "uses_left": 1.0,
	}
	if resp.StatusCode != 200 {
		t.Fatalf("show: %d", resp.StatusCode)
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("show (-want +got):\n%s", diff)
	}
}

func TestMayDecide(t *testing.T) {
	r := approvals.Request{Call: approvals.Call{User: "u", Agent: "a"}, Approvers: []string{"group:g", "role:r", "user:x", "bogus", "group:"}}
	tests := []struct {
		a    approvals.Approver
		want bool
	}{
		{approvals.Approver{Subject: "u"}, true},
		{approvals.Approver{Subject: "x"}, true},
		{approvals.Approver{Subject: "y", Groups: []string{"g"}}, true},
		{approvals.Approver{Subject: "y", Roles: []string{"r"}}, true},
		{approvals.Approver{Subject: "y", Groups: []string{"r"}, Roles: []string{"g"}}, false},
		{approvals.Approver{Subject: "y", Groups: []string{""}}, false},
		{approvals.Approver{Subject: "bogus"}, false},
		{approvals.Approver{Subject: "a", Groups: []string{"g"}}, false},
		{approvals.Approver{Subject: "", Groups: []string{"g"}}, false},
	}
	for _, tt := range tests {
		if got := tt.a.MayDecide(r); got != tt.want {
			t.Errorf("%+v: %v, want %v", tt.a, got, tt.want)
		}
	}
	// When the user is the agent (an agent acting for itself), nobody
	// decides as that subject.
	self := approvals.Request{Call: approvals.Call{User: "a", Agent: "a"}}
	if (approvals.Approver{Subject: "a"}).MayDecide(self) {
		t.Error("an agent that is also the user decided its own request")
	}
}
