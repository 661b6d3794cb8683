package policies_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/policies"
)

// fullInput is a realistic MCP tools/call as extauthz describes it.
func fullInput() *policies.Input {
	headers := map[string]any{
		":authority": "tools.internal", ":method": "POST", ":path": "/mcp", ":scheme": "https",
		"accept": "application/json, text/event-stream", "authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
		"content-type": "application/json", "content-length": "132", "mcp-method": "tools/call",
		"mcp-name": "search_issues", "mcp-protocol-version": "2025-06-18", "mcp-session-id": "7f9c2ba4e88f827d",
		"user-agent": "research-bot/1.4", "x-forwarded-proto": "https", "x-request-id": "0d5e8b46-3c1a-4f0e-9d7e-1b2c3d4e5f60",
	}
	return &policies.Input{
		Attributes: map[string]any{
			"source":      map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.0.7", "portValue": 41234.0}}, "principal": "spiffe://acme/agent/research-bot"},
			"destination": map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "10.0.0.9", "portValue": 8443.0}}},
			"request": map[string]any{"time": "2026-01-01T00:00:00Z", "http": map[string]any{
				"id": "1234", "method": "POST", "path": "/mcp", "host": "tools.internal", "scheme": "https",
				"protocol": "HTTP/2", "size": "132", "headers": headers,
			}},
			"contextExtensions": map[string]any{"resource": "mcp://tools", "tenant": "acme", "sensitivity": "low"},
		},
		ParsedPath:  []string{"mcp"},
		ParsedQuery: map[string][]string{"trace": {"1"}},
		ParsedBody: map[string]any{"jsonrpc": "2.0", "id": 7.0, "method": "tools/call",
			"params": map[string]any{"name": "search_issues", "arguments": map[string]any{"q": "bug", "limit": 10.0}}},
		Identity: &policies.Identity{User: "user-7", Agent: "research-bot", Tenant: "acme", Actors: []string{"research-bot"},
			Issuer: "https://idp.example", Scopes: []string{"tools.call"}, SPIFFEID: "spiffe://acme/agent/research-bot",
			Claims: map[string]any{"sub": "user-7", "act": map[string]any{"sub": "research-bot"}, "exp": 1.9e9}},
		MCP:      &policies.MCP{Method: "tools/call", Name: "search_issues", Arguments: map[string]any{"q": "bug", "limit": 10.0}},
		Resource: &policies.Resource{ID: "mcp://tools", Tenant: "acme", Sensitivity: "low", Extensions: map[string]string{"resource": "mcp://tools", "tenant": "acme", "sensitivity": "low", "token_profile": "access_token"}},
		Approval: &policies.Approval{ID: "ap-9", Status: "approved"},
	}
}

func TestInputValue(t *testing.T) {
	tests := []struct {
		name string
		in   *policies.Input
		want map[string]any
	}{
		{
			name: "empty: opa-envoy-plugin's keys only",
			in:   &policies.Input{},
			want: map[string]any{"attributes": map[string]any{}, "parsed_path": []any{}, "parsed_query": map[string]any{},
				"parsed_body": nil, "truncated_body": false},
		},
		{
			name: "empty strings omitted, typed resource fields win",
			in: &policies.Input{
				TruncatedBody: true,
				Identity:      &policies.Identity{Agent: "bot", Dev: true},
				MCP:           &policies.MCP{Method: "ping"},
				Resource:      &policies.Resource{ID: "mcp://a", Extensions: map[string]string{"id": "other", "region": "eu", "empty": ""}},
				Approval:      &policies.Approval{Status: "pending"},
			},
			want: map[string]any{"attributes": map[string]any{}, "parsed_path": []any{}, "parsed_query": map[string]any{},
				"parsed_body": nil, "truncated_body": true,
				"identity": map[string]any{"agent": "bot", "actors": []any{}, "scopes": []any{}, "claims": map[string]any{}, "dev": true},
				"mcp":      map[string]any{"method": "ping", "arguments": map[string]any{}},
				"resource": map[string]any{"id": "mcp://a", "region": "eu"},
				"approval": map[string]any{"status": "pending"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.Value()); diff != "" {
				t.Errorf("Value() (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(roundTrip(t, tt.want), policyView(t, tt.in)); diff != "" {
				t.Errorf("input as the policy sees it (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInputPolicyViewMatchesValue proves the engine's direct conversion and
// Value agree on a full input.
func TestInputPolicyViewMatchesValue(t *testing.T) {
	in := fullInput()
	if diff := cmp.Diff(roundTrip(t, in.Value()), policyView(t, in)); diff != "" {
		t.Errorf("policy input differs from Value() (-Value +policy):\n%s", diff)
	}
}

// policyView returns the input exactly as a policy sees it.
func policyView(t *testing.T, in *policies.Input) any {
	t.Helper()
	e := engineWith(t, "package writ.authz\ndecision := {\"allow\": true, \"dynamic_metadata\": {\"input\": input}}", nil)
	d, _, err := e.Decide(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	return roundTrip(t, d.DynamicMetadata["input"])
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	bs, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(bs, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWithOnInputStaysLocal: `with input.x as y` changes input only for its
// own expression.
func TestWithOnInputStaysLocal(t *testing.T) {
	e := engineWith(t, `package writ.authz
name := input.mcp.name
user := input.identity.user
decision := {"allow": true, "reason": concat(",", [a, input.mcp.name, b, input.identity.user])} if {
	a := name with input.mcp.name as "changed"
	b := user with input.identity as {"user": "bob"}
}`, nil)
	d, _, err := e.Decide(t.Context(), delegatedCall("orig"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != "changed,orig,bob,alice" {
		t.Errorf("reason = %q", d.Reason)
	}
}

// TestPolicyReadsInputMembers: however a policy reaches input.attributes,
// input.parsed_body, the claims or the arguments, it sees them.
func TestPolicyReadsInputMembers(t *testing.T) {
	in := fullInput()
	tests := []struct {
		name, body string
	}{
		{"direct path", `input.attributes.request.http.method == "POST"`},
		{"import alias", `http.method == "POST"`},
		{"variable key", `some k; k == "attributes"; input[k].request.http.method == "POST"`},
		{"whole input", `object.get(input, ["parsed_body", "params", "name"], "") == "search_issues"`},
		{"walk", `some path, v; walk(input, [path, v]); path == ["identity", "claims", "sub"]; v == "user-7"`},
		{"parent object", `id := input.identity; id.claims.act.sub == "research-bot"`},
		{"variable inside", `some k; input.mcp[k].limit == 10`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineWith(t, "package writ.authz\nimport input.attributes.request.http\ndecision := {\"allow\": true} if {\n"+tt.body+"\n}", nil)
			d, _, err := e.Decide(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allow {
				t.Errorf("decision = %+v; the policy did not see the input member", d)
			}
		})
	}
}

// TestAttributesFunc: the engine builds input.attributes on demand, once,
// and only for a policy that can read them.
func TestAttributesFunc(t *testing.T) {
	attrs := map[string]any{"request": map[string]any{"http": map[string]any{"method": "POST"}}}
	tests := []struct {
		name   string
		policy string // empty: the default policy
		// set also fills Attributes, which then wins over the func.
		set       bool
		wantCalls int
		wantAllow bool
	}{
		{name: "policy reads input.attributes",
			policy:    `input.attributes.request.http.method == "POST"`,
			wantCalls: 1, wantAllow: true},
		{name: "read twice, built once",
			policy:    `input.attributes.request.http.method == "POST"; count(input.attributes) == 1`,
			wantCalls: 1, wantAllow: true},
		{name: "policy reads input as a whole",
			policy:    `object.get(input, ["attributes", "request", "http", "method"], "") == "POST"`,
			wantCalls: 1, wantAllow: true},
		{name: "policy reads input through a variable key",
			policy:    `some k; k == "attributes"; input[k].request.http.method == "POST"`,
			wantCalls: 1, wantAllow: true},
		{name: "Attributes already set",
			policy: `input.attributes.request.http.method == "POST"`,
			set:    true, wantCalls: 0, wantAllow: true},
		{name: "policy never reads input.attributes",
			policy:    `input.mcp.method == "tools/call"`,
			wantCalls: 0, wantAllow: true},
		{name: "default policy", wantCalls: 0, wantAllow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := policies.NewEngine(policies.Options{})
			if tt.policy != "" {
				e = engineWith(t, "package writ.authz\ndecision := {\"allow\": true} if {\n"+tt.policy+"\n}", nil)
			}
			in := delegatedCall("search_issues")
			calls := 0
			in.AttributesFunc = func() map[string]any {
				calls++
				return attrs
			}
			if tt.set {
				in.Attributes = attrs
			}
			d, _, err := e.Decide(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.wantAllow {
				t.Errorf("decision = %+v, want allow %v", d, tt.wantAllow)
			}
			if calls != tt.wantCalls {
				t.Errorf("AttributesFunc called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

// TestValueCallsAttributesFunc: Value renders attributes from the func.
func TestValueCallsAttributesFunc(t *testing.T) {
	in := &policies.Input{AttributesFunc: func() map[string]any { return map[string]any{"source": "x"} }}
	if diff := cmp.Diff(map[string]any{"source": "x"}, in.Value()["attributes"]); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
}
