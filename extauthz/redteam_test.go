package extauthz_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/test/writtest"
	"github.com/writ-dev/writ/tokens"
)

// Hostile requests against the whole Check path: each test names the
// attack and asserts the answer writ must give.

// capture is a Decider that keeps the input it was given and answers dec.
type capture struct {
	mu  sync.Mutex
	in  *policies.Input
	dec policies.Decision
}

func (c *capture) Decide(_ context.Context, in *policies.Input) (policies.Decision, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in = in
	return c.dec, "sha256:capture", nil
}

func (c *capture) input() *policies.Input {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in
}

func allowAll() *capture {
	return &capture{dec: policies.Decision{Allow: true, Audience: "https://tools.internal"}}
}

// deniedStatus is the denial's HTTP status, or 0 for an allow.
func deniedStatus(t *testing.T, resp *authv3.CheckResponse) int {
	t.Helper()
	if resp.GetOkResponse() != nil {
		if resp.GetStatus().GetCode() != 0 {
			t.Fatalf("OK response with a non-OK status: %v", resp)
		}
		return 0
	}
	if resp.GetStatus().GetCode() == 0 {
		t.Fatalf("denial with gRPC status OK: %v", resp)
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// rawCall is an MCP request with a body written by hand.
func rawCall(bearer, body string, headers, ext map[string]string) *authv3.CheckRequest {
	req := writtest.ToolCall("x", nil, bearer, ext)
	h := req.Attributes.Request.Http
	delete(h.Headers, "mcp-method")
	delete(h.Headers, "mcp-name")
	for k, v := range headers {
		if v == "" {
			delete(h.Headers, k)
			continue
		}
		h.Headers[k] = v
	}
	h.RawBody, h.Size = []byte(body), int64(len(body))
	return req
}

// plainRoute is a route not marked as MCP.
var plainRoute = map[string]string{"resource": "https://tools.internal", "tenant": "tenant-a"}

// A tool name is copied into the writ token's space-separated scope claim by
// the built-in policy: a name with a space would grant a second scope.
func TestRedTeamToolNameCannotInjectScopes(t *testing.T) {
	for name, tool := range map[string]string{
		"space":            "x mcp:tools:delete_repo",
		"tab":              "x\tmcp:tools:delete_repo",
		"newline":          "x\nmcp:tools:delete_repo",
		"no-break space":   "x\u00a0mcp:tools:delete_repo",
		"ideographic":      "x\u3000mcp:tools:delete_repo",
		"line separator":   "x\u2028mcp:tools:delete_repo",
		"nul":              "delete_repo\u0000",
		"bidi override":    "search\u202eoper_eteled",
		"zero-width space": "delete\u200brepo",
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			req := writtest.ToolCall(tool, nil, r.token(t, "alice", "research-bot"), nil)
			delete(req.Attributes.Request.Http.Headers, "mcp-name")
			resp, err := r.srv.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := deniedStatus(t, resp); got != 400 {
				t.Fatalf("status %d, want 400 (invalid params); token scopes %v", got, r.records.last(t).Token)
			}
			if !strings.Contains(resp.GetDeniedResponse().GetBody(), `"code":-32602`) {
				t.Errorf("body %s, want JSON-RPC -32602", resp.GetDeniedResponse().GetBody())
			}
		})
	}
}

// A megabyte-long tool name would be copied into the evidence record, the
// log line and a megabyte-long writ token on every call.
func TestRedTeamNameLengthBounded(t *testing.T) {
	r := newRig(t, rigOptions{})
	tok := r.token(t, "alice", "research-bot")
	for name, body := range map[string]string{
		"tool":     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + strings.Repeat("x", 64<<10) + `"}}`,
		"resource": `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///` + strings.Repeat("x", 64<<10) + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := r.srv.Check(t.Context(), rawCall(tok, body, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := deniedStatus(t, resp); got != 400 {
				t.Fatalf("status %d, want 400", got)
			}
			if rec := r.records.last(t); len(rec.Request.MCPName) > 0 {
				t.Errorf("evidence kept a %d-byte name", len(rec.Request.MCPName))
			}
		})
	}
}

// On a route not marked as MCP, a JSON-RPC call the upstream would execute
// must still be described as MCP, or refused: never handed to policy as an
// opaque body.
func TestRedTeamHiddenJSONRPCOnPlainRoute(t *testing.T) {
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}}`
	cases := []struct {
		name       string
		body       string
		headers    map[string]string
		wantStatus int    // 0: allowed, and input.mcp names the tool
		wantName   string // with wantStatus 0
	}{
		{name: "batch", body: "[" + call + "]", wantStatus: 400},
		{name: "batch with whitespace", body: " \n[ " + call + " ]", wantStatus: 400},
		{name: "member spelled in capitals", body: strings.Replace(call, `"jsonrpc"`, `"JSONRPC"`, 1), wantStatus: 400},
		{name: "text/plain", body: call, headers: map[string]string{"content-type": "text/plain"}, wantName: "delete_repo"},
		{name: "no content type", body: call, headers: map[string]string{"content-type": ""}, wantName: "delete_repo"},
		{name: "byte order mark", body: "\ufeff" + call, wantStatus: 400},
		{name: "byte order mark, text/plain", body: "\ufeff" + call, headers: map[string]string{"content-type": "text/plain"}, wantStatus: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := allowAll()
			r := newRig(t, rigOptions{engine: c})
			resp, err := r.srv.Check(t.Context(), rawCall(r.token(t, "alice", "research-bot"), tc.body, tc.headers, plainRoute))
			if err != nil {
				t.Fatal(err)
			}
			got := deniedStatus(t, resp)
			if got != tc.wantStatus {
				t.Fatalf("status %d, want %d", got, tc.wantStatus)
			}
			if tc.wantStatus == 0 {
				if in := c.input(); in.MCP == nil || in.MCP.Name != tc.wantName || in.MCP.Method != "tools/call" {
					t.Fatalf("policy saw mcp %+v, want tools/call %s", in.MCP, tc.wantName)
				}
			}
		})
	}
}

// Envoy adds x-envoy-auth-partial-body itself; an agent sending its own
// copy must not turn "true" into something writ reads as complete.
func TestRedTeamPartialBodyHeaderRepeated(t *testing.T) {
	c := allowAll()
	r := newRig(t, rigOptions{engine: c})
	req := rawCall(r.token(t, "alice", "research-bot"), `{"a":1}`, nil, plainRoute)
	h := req.Attributes.Request.Http
	var list []*corev3.HeaderValue
	for k, v := range h.Headers {
		list = append(list, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	list = append(list,
		&corev3.HeaderValue{Key: "x-envoy-auth-partial-body", RawValue: []byte("false")},
		&corev3.HeaderValue{Key: "x-envoy-auth-partial-body", RawValue: []byte("true")})
	h.Headers, h.HeaderMap, h.Size = nil, &corev3.HeaderMap{Headers: list}, 0
	resp, err := r.srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if deniedStatus(t, resp) != 0 {
		t.Fatalf("denied: %v", resp)
	}
	if in := c.input(); !in.TruncatedBody || in.ParsedBody != nil {
		t.Fatalf("truncated_body %v, parsed_body %v: a body Envoy marked partial was taken as complete", in.TruncatedBody, in.ParsedBody)
	}
}

// Repeated header names in header_map are joined; joining must not cost
// quadratic time and memory (64 Ki one-byte headers is within the limit).
func TestRedTeamRepeatedHeadersJoinLinearly(t *testing.T) {
	r := newRig(t, rigOptions{engine: allowAll()})
	req := writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), nil)
	h := req.Attributes.Request.Http
	var list []*corev3.HeaderValue
	used := 0
	for k, v := range h.Headers {
		list = append(list, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		used += len(k) + len(v)
	}
	for range 64<<10 - used {
		list = append(list, &corev3.HeaderValue{Key: "a"})
	}
	h.Headers, h.HeaderMap = nil, &corev3.HeaderMap{Headers: list}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := r.srv.Check(t.Context(), req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if deniedStatus(t, resp) != 0 {
		t.Fatalf("denied: %v", resp)
	}
	// Linear joining allocates a few MiB here; quadratic, about 2 GiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Fatalf("one Check allocated %d MiB for %d repeated headers", alloc>>20, len(list))
	}
}

// The inbound credential is never policy input: policies get the verified
// identity instead. The scheme stays so that "is it a bearer token?" rules
// keep working; a rule that decodes the token itself now fails closed.
func TestRedTeamCredentialsNotInPolicyInput(t *testing.T) {
	c := allowAll()
	r := newRig(t, rigOptions{engine: c})
	tok := r.token(t, "alice", "research-bot")
	for name, build := range map[string]func() *authv3.CheckRequest{
		"headers": func() *authv3.CheckRequest {
			req := writtest.ToolCall("search_issues", nil, tok, nil)
			req.Attributes.Request.Http.Headers["proxy-authorization"] = "Basic c2VjcmV0OnNlY3JldA=="
			req.Attributes.Request.Http.Headers["txn-token"] = "forged.txn.token"
			return req
		},
		"header_map": func() *authv3.CheckRequest {
			req := writtest.ToolCall("search_issues", nil, tok, nil)
			h := req.Attributes.Request.Http
			var list []*corev3.HeaderValue
			for k, v := range h.Headers {
				list = append(list, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
			}
			list = append(list,
				&corev3.HeaderValue{Key: "Proxy-Authorization", Value: "Basic c2VjcmV0OnNlY3JldA=="},
				&corev3.HeaderValue{Key: "txn-token", RawValue: []byte("forged.txn.token")})
			h.HeaderMap = &corev3.HeaderMap{Headers: list}
			h.Headers = map[string]string{"authorization": "Bearer " + tok}
			return req
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := r.srv.Check(t.Context(), build())
			if err != nil {
				t.Fatal(err)
			}
			if deniedStatus(t, resp) != 0 {
				t.Fatalf("denied: %v", resp)
			}
			in := c.input()
			if in.Identity == nil || in.Identity.User != "alice" {
				t.Fatalf("identity %+v", in.Identity)
			}
			text := mustJSON(in.Value())
			for _, secret := range []string{tok, strings.Split(tok, ".")[2], "c2VjcmV0OnNlY3JldA==", "forged.txn.token", "Zm9yZ2VkLnR4bi50b2tlbg"} {
				if strings.Contains(string(text), secret) {
					t.Errorf("policy input carries a credential: %s", text)
				}
			}
			http := in.Value()["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)
			if got := http["headers"].(map[string]any)["authorization"]; got != "Bearer [redacted]" {
				t.Errorf("authorization in input = %v, want the scheme kept: Bearer [redacted]", got)
			}
			if name != "header_map" {
				return
			}
			want := map[string]string{"authorization": "Bearer [redacted]", "proxy-authorization": "Basic [redacted]", "txn-token": "[redacted]"}
			for _, e := range http["headerMap"].(map[string]any)["headers"].([]any) {
				entry := e.(map[string]any)
				key := strings.ToLower(entry["key"].(string))
				w, ok := want[key]
				if !ok {
					continue
				}
				got, _ := entry["value"].(string)
				if raw, ok := entry["rawValue"].(string); ok {
					b, err := base64.StdEncoding.DecodeString(raw)
					if err != nil {
						t.Fatal(err)
					}
					got = string(b)
				}
				if got != w {
					t.Errorf("header_map %s = %q, want %q", key, got, w)
				}
				delete(want, key)
			}
			if len(want) > 0 {
				t.Errorf("header_map lost %v", want)
			}
		})
	}
}

// In HTTP mode the upstream headers and the client's response headers
// share one HTTP response: a policy's response header must not replace
// the writ token or the removal list.
func TestRedTeamHTTPModeResponseHeadersCannotClobber(t *testing.T) {
	c := &capture{dec: policies.Decision{Allow: true, Audience: "https://tools.internal", Profile: "txn_token",
		ResponseHeaders: map[string]string{"txn-token": "from-policy", "x-envoy-auth-headers-to-remove": "x-nothing", "x-writ-decision-id": "forged"}}}
	r := newRig(t, rigOptions{engine: c})
	srv := httptest.NewServer(r.srv.HTTPHandler())
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token(t, "alice", "research-bot"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Writ-Mcp", "true")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Values("Txn-Token"); len(got) != 1 || !strings.HasPrefix(got[0], "ey") {
		t.Errorf("txn-token = %q, want only the writ token", got)
	}
	if got := resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"); !slices.Contains(strings.Split(got, ","), "authorization") {
		t.Errorf("x-envoy-auth-headers-to-remove = %q: the agent's authorization would reach the upstream", got)
	}
	if got := resp.Header.Values("X-Writ-Decision-Id"); len(got) != 1 || got[0] == "forged" {
		t.Errorf("x-writ-decision-id = %q", got)
	}
}

// The caller has gone (Envoy's deadline passed): writ still keeps the
// evidence of what it decided, and Check returns no error.
func TestRedTeamCancelledCallerStillRecorded(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	resp, err := r.srv.Check(ctx, writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), nil))
	if err != nil || resp == nil {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	rec := r.records.last(t)
	want := 200
	if resp.GetOkResponse() == nil {
		want = int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	if rec.Status != want || rec.DecisionID != writtest.Header(resp, "x-writ-decision-id") {
		t.Fatalf("evidence %d %s does not match the answer %v", rec.Status, rec.DecisionID, resp)
	}
}

// ---- Findings outside describe, mcp, attributes and httpmode ----

// A token for tenant-a must not be allowed on a route of tenant-b.
func TestRedTeamCrossTenantCall(t *testing.T) {
	r := newRig(t, rigOptions{})
	req := writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"),
		map[string]string{"resource": "mcp://tools-b", "tenant": "tenant-b", "mcp": "true"})
	resp, err := r.srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := deniedStatus(t, resp); got != 403 {
		t.Fatalf("status %d, want 403: tenant-a's token was allowed on tenant-b's route", got)
	}
}

// A scope is an RFC 6749 scope-token: no spaces. A scope with one would be
// read by the upstream as two scopes.
func TestRedTeamMintRefusesScopeWithSpace(t *testing.T) {
	r := newRig(t, rigOptions{})
	_, err := r.minter.Mint(t.Context(), tokens.MintRequest{User: "alice", Agent: "research-bot", Audience: "https://tools.internal",
		Scopes: []string{"mcp:tools:x mcp:tools:delete_repo"}})
	if err == nil {
		t.Fatal("minted a token whose scope claim grants mcp:tools:delete_repo")
	}
}

// The Host header is the agent's: it must not choose the writ token's
// audience.
func TestRedTeamAudienceNotFromHost(t *testing.T) {
	r := newRig(t, rigOptions{engine: &capture{dec: policies.Decision{Allow: true}}})
	req := writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), map[string]string{"mcp": "true"})
	req.Attributes.Request.Http.Host = "payments.internal"
	resp, err := r.srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if deniedStatus(t, resp) == 0 {
		t.Fatalf("allowed with a writ token for audience %q", r.records.last(t).Token.Audience)
	}
}

type panicking struct{}

func (panicking) Decide(context.Context, *policies.Input) (policies.Decision, string, error) {
	panic("policy engine bug")
}

// A panic on the Check path must become a recorded denial: a crash leaves
// the answer to Envoy's failure_mode_allow.
func TestRedTeamPanicIsDenial(t *testing.T) {
	r := newRig(t, rigOptions{engine: panicking{}})
	var resp *authv3.CheckResponse
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Check panicked: %v", p)
			}
		}()
		resp, _ = r.srv.Check(t.Context(), writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), nil))
	}()
	if got := deniedStatus(t, resp); got != 500 {
		t.Fatalf("status %d, want 500", got)
	}
	if rec := r.records.last(t); rec.Status != 500 {
		t.Fatalf("evidence status %d", rec.Status)
	}
}

// Headers the agent sends that writ's names own, and credentials meant for
// a proxy, never reach the upstream on an allow.
func TestRedTeamForgedWritHeadersRemoved(t *testing.T) {
	r := newRig(t, rigOptions{})
	req := writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), nil)
	req.Attributes.Request.Http.Headers["x-writ-tenant"] = "tenant-b"
	req.Attributes.Request.Http.Headers["x-writ-user"] = "admin"
	req.Attributes.Request.Http.Headers["proxy-authorization"] = "Basic c2VjcmV0OnNlY3JldA=="
	resp, err := r.srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	removed := resp.GetOkResponse().GetHeadersToRemove()
	for _, h := range []string{"x-writ-tenant", "x-writ-user", "proxy-authorization"} {
		if !slices.Contains(removed, h) {
			t.Errorf("headers_to_remove %v lacks %s", removed, h)
		}
	}
}

// An invalid credential is answered before the body is parsed: an
// unauthenticated caller cannot make writ decode a megabyte of JSON.
func TestRedTeamAuthenticateBeforeParsingBody(t *testing.T) {
	r := newRig(t, rigOptions{})
	resp, err := r.srv.Check(t.Context(), rawCall("not-a-token", `{"jsonrpc":"2.0",`, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := deniedStatus(t, resp); got != 401 {
		t.Fatalf("status %d, want 401 before the body is looked at", got)
	}
}

// The evidence keeps the request path without its query; a resource URI's
// query can carry a secret in the same way.
func TestRedTeamResourceURIQueryNotRecorded(t *testing.T) {
	r := newRig(t, rigOptions{engine: allowAll()})
	body := `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"https://docs.internal/a?sig=SECRET"}}`
	if _, err := r.srv.Check(t.Context(), rawCall(r.token(t, "alice", "research-bot"), body, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if rec := r.records.last(t); strings.Contains(rec.Request.MCPName, "SECRET") {
		t.Fatalf("evidence mcp name %q keeps the query", rec.Request.MCPName)
	}
}
