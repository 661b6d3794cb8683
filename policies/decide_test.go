package policies_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/policies"
)

// engineWith returns an engine serving one module, plus data.
func engineWith(t *testing.T, src string, data map[string]any) *policies.Engine {
	t.Helper()
	e := policies.NewEngine(policies.Options{})
	if _, err := e.LoadBundle(t.Context(), policies.Bundle{Modules: map[string]string{"policy.rego": src}, Data: data}); err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	return e
}

// defaultPolicyCase is one request to the default policy and the decision
// it must get, with data for the default bundle when set.
type defaultPolicyCase struct {
	name string
	data map[string]any
	in   *policies.Input
	want policies.Decision
}

// defaultPolicyCases covers every branch of the default policy.
func defaultPolicyCases() []defaultPolicyCase {
	withSensitivity := func(in *policies.Input, s string) *policies.Input {
		in.Resource = &policies.Resource{ID: "https://billing.internal", Sensitivity: s}
		return in
	}
	withApproval := func(in *policies.Input, status string) *policies.Input {
		in.Approval = &policies.Approval{ID: "ap-1", Status: status}
		return in
	}
	session := func(method string) *policies.Input {
		return &policies.Input{
			Identity: &policies.Identity{Agent: "research-bot"},
			MCP:      &policies.MCP{Method: method},
		}
	}
	return []defaultPolicyCase{
		{
			name: "no identity",
			in:   &policies.Input{MCP: &policies.MCP{Method: "tools/call", Name: "search_issues"}},
			want: policies.Decision{Reason: "no verified identity"},
		},
		{
			name: "nil input",
			in:   nil,
			want: policies.Decision{Reason: "no verified identity"},
		},
		{
			name: "delegated tool call",
			in:   delegatedCall("search_issues"),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:tools:search_issues"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "delegated resource read, audience from the resource",
			in: func() *policies.Input {
				in := delegatedCall("")
				in.MCP = &policies.MCP{Method: "resources/read", Name: "file:///notes.md"}
				in.Resource = &policies.Resource{ID: "mcp://files"}
				return in
			}(),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:resources:file%3A%2F%2F%2Fnotes.md"}, Audience: "mcp://files", TTL: 60 * time.Second},
		},
		{
			name: "tool name escaped into one scope-token",
			in:   delegatedCall("x mcp:tools:delete_repo"),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:tools:x+mcp%3Atools%3Adelete_repo"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "tenant mismatch",
			in: func() *policies.Input {
				in := delegatedCall("search_issues")
				in.Identity.Tenant = "acme"
				in.Resource = &policies.Resource{ID: "mcp://tools-b", Tenant: "globex"}
				return in
			}(),
			want: policies.Decision{Reason: "tenant mismatch"},
		},
		{
			name: "route tenant, identity without one",
			in: func() *policies.Input {
				in := delegatedCall("search_issues")
				in.Identity.Tenant = ""
				in.Resource = &policies.Resource{Tenant: "acme"}
				return in
			}(),
			want: policies.Decision{Reason: "tenant mismatch"},
		},
		{
			name: "same tenant",
			in: func() *policies.Input {
				in := delegatedCall("search_issues")
				in.Identity.Tenant = "acme"
				in.Resource = &policies.Resource{ID: "mcp://tools", Tenant: "acme"}
				return in
			}(),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:tools:search_issues"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "high sensitivity needs approval",
			in:   withSensitivity(delegatedCall("refund"), "high"),
			want: policies.Decision{Reason: "approval required for a high-sensitivity resource",
				Approval: &policies.ApprovalRequirement{Required: true,
					BindingMessage: "Allow research-bot to call refund for alice?", TTL: 10 * time.Minute}},
		},
		{
			name: "high sensitivity, approved",
			in:   withApproval(withSensitivity(delegatedCall("refund"), "high"), "approved"),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed with approval",
				Scopes: []string{"mcp:tools:refund"}, Audience: "https://billing.internal", TTL: 60 * time.Second},
		},
		{
			name: "high sensitivity, approval denied",
			in:   withApproval(withSensitivity(delegatedCall("refund"), "high"), "denied"),
			want: policies.Decision{Reason: "approval was denied"},
		},
		{
			name: "low sensitivity needs no approval",
			in:   withSensitivity(delegatedCall("refund"), "low"),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:tools:refund"}, Audience: "https://billing.internal", TTL: 60 * time.Second},
		},
		{
			name: "session method",
			in:   session("tools/list"),
			want: policies.Decision{Allow: true, Reason: "MCP session method allowed",
				Scopes: []string{"mcp:session"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "notification",
			in:   session("notifications/initialized"),
			want: policies.Decision{Allow: true, Reason: "MCP session method allowed",
				Scopes: []string{"mcp:session"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "denied tool",
			data: map[string]any{"writ": map[string]any{"denied_tools": []any{"delete_repo"}}},
			in:   delegatedCall("delete_repo"),
			want: policies.Decision{Reason: "tool is denied by policy"},
		},
		{
			name: "denied tools leave others alone",
			data: map[string]any{"writ": map[string]any{"denied_tools": []any{"delete_repo"}}},
			in:   delegatedCall("search_issues"),
			want: policies.Decision{Allow: true, Reason: "delegated MCP call allowed",
				Scopes: []string{"mcp:tools:search_issues"}, Audience: "mcp://tools", TTL: 60 * time.Second},
		},
		{
			name: "agent alone may not call tools",
			in: &policies.Input{Identity: &policies.Identity{Agent: "research-bot"},
				MCP: &policies.MCP{Method: "tools/call", Name: "search_issues"}},
			want: policies.Decision{Reason: "no rule allowed this request"},
		},
		{
			name: "not MCP",
			in:   &policies.Input{Identity: &policies.Identity{User: "alice", Agent: "bot"}, ParsedPath: []string{"api", "v1"}},
			want: policies.Decision{Reason: "no rule allowed this request"},
		},
	}
}

func TestDecideDefaultPolicy(t *testing.T) {
	for _, tt := range defaultPolicyCases() {
		t.Run(tt.name, func(t *testing.T) {
			e := policies.NewEngine(policies.Options{})
			if tt.data != nil {
				b := policies.DefaultBundle()
				b.Data = tt.data
				if _, err := e.LoadBundle(t.Context(), b); err != nil {
					t.Fatal(err)
				}
			}
			got, rev, err := e.Decide(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if rev != e.Revision() {
				t.Errorf("decided by %q, want %q", rev, e.Revision())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	get := &policies.Input{Attributes: map[string]any{"request": map[string]any{"http": map[string]any{"method": "GET"}}}}
	post := &policies.Input{Attributes: map[string]any{"request": map[string]any{"http": map[string]any{"method": "POST"}}}}
	tests := []struct {
		name   string
		policy string
		in     *policies.Input
		want   policies.Decision
	}{
		{
			name: "writ decision with every field",
			policy: `package writ.authz
decision := {
	"allow": true,
	"reason": "tool allowed for agent",
	"scopes": ["tickets:write", "tickets:read"],
	"audience": "https://tickets.internal",
	"ttl": "90s",
	"profile": "txn_token",
	"approval": {"required": true, "binding_message": "Refund $120 to ACME?", "approvers": ["group:finance"], "ttl": "10m"},
	"credential": {"backend": "salesforce", "ref": "users/{user}", "header": "authorization", "format": "Bearer {secret}"},
	"headers": {"x-tenant": "acme"},
	"response_headers": {"x-policy": "v2"},
	"remove_headers": ["cookie"],
	"http_status": 429,
	"body": "slow down",
	"dynamic_metadata": {"team": "billing", "weight": 2, "tags": ["a"]},
	"future_field": {"ignored": true},
}`,
			want: policies.Decision{
				Allow: true, Reason: "tool allowed for agent",
				Scopes: []string{"tickets:write", "tickets:read"}, Audience: "https://tickets.internal",
				TTL: 90 * time.Second, Profile: "txn_token",
				Approval: &policies.ApprovalRequirement{Required: true, BindingMessage: "Refund $120 to ACME?",
					Approvers: []string{"group:finance"}, TTL: 10 * time.Minute},
				Credential: &policies.CredentialRef{Backend: "salesforce", Ref: "users/{user}",
					Header: "authorization", Format: "Bearer {secret}"},
				Headers:         map[string]string{"x-tenant": "acme"},
				ResponseHeaders: map[string]string{"x-policy": "v2"},
				RemoveHeaders:   []string{"cookie"},
				HTTPStatus:      429,
				Body:            "slow down",
				DynamicMetadata: map[string]any{"team": "billing", "weight": jsonNumber("2"), "tags": []any{"a"}},
			},
		},
		{
			name:   "ttl as seconds, scopes from a set",
			policy: "package writ.authz\nscopes contains s if some s in [\"b\", \"a\"]\ndecision := {\"allow\": true, \"ttl\": 1.5, \"scopes\": scopes}",
			want:   policies.Decision{Allow: true, TTL: 1500 * time.Millisecond, Scopes: []string{"a", "b"}},
		},
		{
			name:   "decision assembled from partial rules",
			policy: "package writ.authz\ndecision.allow := true\ndecision.reason := \"piecewise\"",
			want:   policies.Decision{Allow: true, Reason: "piecewise"},
		},
		{
			name:   "undefined",
			policy: "package writ.authz\ndecision := {\"allow\": true} if input.mcp.name == \"never\"",
			in:     delegatedCall("search_issues"),
			want:   policies.Decision{Reason: "policy returned no decision"},
		},
		{
			name:   "envoy boolean allow",
			policy: "package envoy.authz\nallow if input.attributes.request.http.method == \"GET\"",
			in:     get,
			want:   policies.Decision{Allow: true, Reason: "allowed by data.envoy.authz.allow"},
		},
		{
			name:   "envoy boolean deny",
			policy: "package envoy.authz\ndefault allow := false\nallow if input.attributes.request.http.method == \"GET\"",
			in:     post,
			want:   policies.Decision{Reason: "denied by data.envoy.authz.allow"},
		},
		{
			name:   "envoy boolean undefined",
			policy: "package envoy.authz\nallow if input.attributes.request.http.method == \"GET\"",
			in:     post,
			want:   policies.Decision{Reason: "policy returned no decision"},
		},
		{
			name: "envoy object, headers as strings",
			policy: `package envoy.authz
allow := {"allowed": true, "headers": {"x-user": "alice"}, "response_headers_to_add": {"x-trace": "t1"},
	"request_headers_to_remove": ["authorization"], "dynamic_metadata": {"user": "alice"}}`,
			want: policies.Decision{Allow: true, Reason: "allowed by data.envoy.authz.allow",
				Headers: map[string]string{"x-user": "alice"}, ResponseHeaders: map[string]string{"x-trace": "t1"},
				RemoveHeaders: []string{"authorization"}, DynamicMetadata: map[string]any{"user": "alice"}},
		},
		{
			name:   "envoy object, headers as arrays and lists of objects",
			policy: "testdata/envoy_object",
			in:     get,
			want: policies.Decision{Allow: true, Reason: "allowed by data.envoy.authz.allow",
				Headers:         map[string]string{"x-user": "alice", "x-groups": "eng, ops"},
				ResponseHeaders: map[string]string{"x-trace": "t1, t2"},
				RemoveHeaders:   []string{"authorization"},
				DynamicMetadata: map[string]any{"user": "alice", "level": jsonNumber("3")}},
		},
		{
			name:   "envoy object denial: headers go to the client",
			policy: "testdata/envoy_object",
			in:     post,
			want: policies.Decision{Reason: "denied by data.envoy.authz.allow", HTTPStatus: 403, Body: "denied",
				ResponseHeaders: map[string]string{"x-deny-reason": "no token"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *policies.Engine
			if strings.HasPrefix(tt.policy, "testdata/") {
				e = policies.NewEngine(policies.Options{})
				if _, err := e.LoadDir(t.Context(), tt.policy); err != nil {
					t.Fatal(err)
				}
			} else {
				e = engineWith(t, tt.policy, nil)
			}
			in := tt.in
			if in == nil {
				in = &policies.Input{}
			}
			got, rev, err := e.Decide(t.Context(), in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if rev != e.Revision() {
				t.Errorf("decided by %q, want %q", rev, e.Revision())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideErrors(t *testing.T) {
	const secret = "s3cr3t-input-value"
	in := delegatedCall(secret)
	tests := []struct {
		name    string
		policy  string
		wantErr error
		// want is the exact error text.
		want string
	}{
		{
			name:    "divide by zero",
			policy:  "package writ.authz\ndecision := {\"allow\": count(input.mcp.arguments) / 0 > 1}",
			wantErr: policies.ErrEvaluation,
			want:    "policies: policy evaluation failed: eval_builtin_error at policy.rego:2",
		},
		{
			name: "conflicting complete rules",
			policy: "package writ.authz\n" +
				"decision := {\"allow\": true, \"reason\": input.mcp.name} if input.identity\n" +
				"decision := {\"allow\": false, \"reason\": input.mcp.name} if input.mcp",
			wantErr: policies.ErrEvaluation,
			want:    "policies: policy evaluation failed: eval_conflict_error at policy.rego:3",
		},
		{
			name:    "builtin error quoting input",
			policy:  "package writ.authz\ndecision := {\"allow\": to_number(input.mcp.name) > 1}",
			wantErr: policies.ErrEvaluation,
			want:    "policies: policy evaluation failed: eval_builtin_error at policy.rego:2",
		},
		{
			name:    "decision is a string",
			policy:  "package writ.authz\ndecision := \"allow\"",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision: want object, got string",
		},
		{
			name:    "allow is a string",
			policy:  "package writ.authz\ndecision := {\"allow\": \"true\"}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.allow: want boolean, got string",
		},
		{
			name:    "allow missing",
			policy:  "package writ.authz\ndecision := {\"reason\": \"forgot\"}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.allow: missing, want boolean",
		},
		{
			name:    "scopes contains a number",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"scopes\": [\"a\", 1]}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.scopes[1]: want string, got number",
		},
		{
			name:    "ttl banana",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"ttl\": \"banana\"}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.ttl: want a duration such as \"60s\" or a number of seconds, got a string that is not a duration",
		},
		{
			name:    "ttl negative",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"ttl\": -5}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.ttl: want a duration of zero or more, got a negative duration",
		},
		{
			name:    "approval ttl is a boolean",
			policy:  "package writ.authz\ndecision := {\"allow\": false, \"approval\": {\"required\": true, \"ttl\": true}}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.approval.ttl: want duration string or number of seconds, got boolean",
		},
		{
			name:    "header value is a number",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"headers\": {\"x-n\": 1}}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.headers[\"x-n\"]: want string, got number",
		},
		{
			name:    "unknown profile",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"profile\": \"id_token\"}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.profile: want \"access_token\" or \"txn_token\"",
		},
		{
			name:    "http status out of range",
			policy:  "package writ.authz\ndecision := {\"allow\": false, \"http_status\": 99}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.http_status: want an HTTP status code from 100 to 599, got 99",
		},
		{
			name:    "credential is a string",
			policy:  "package writ.authz\ndecision := {\"allow\": true, \"credential\": \"vault:x\"}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: decision.credential: want object, got string",
		},
		{
			name:    "envoy allow is a string",
			policy:  "package envoy.authz\nallow := \"yes\"",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: envoy.authz.allow: want boolean or object, got string",
		},
		{
			name:    "envoy allowed missing",
			policy:  "package envoy.authz\nallow := {\"headers\": {}}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: envoy.authz.allow.allowed: missing, want boolean",
		},
		{
			name:    "envoy header array holds a number",
			policy:  "package envoy.authz\nallow := {\"allowed\": true, \"headers\": [{\"x-a\": [\"1\", 2]}]}",
			wantErr: policies.ErrDecisionType,
			want:    "policies: decision has the wrong type: envoy.authz.allow.headers[0][\"x-a\"][1]: want string, got number",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineWith(t, tt.policy, nil)
			got, rev, err := e.Decide(t.Context(), in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decide error = %v, want %v", err, tt.wantErr)
			}
			if err.Error() != tt.want {
				t.Errorf("error text:\n got %s\nwant %s", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error text quotes an input value: %s", err)
			}
			if got.Allow {
				t.Errorf("decision on error allows: %+v", got)
			}
			if rev != e.Revision() {
				t.Errorf("revision on error = %q, want %q", rev, e.Revision())
			}
		})
	}
}

func TestDecideCancelled(t *testing.T) {
	e := engineWith(t, "package writ.authz\ndecision := {\"allow\": count([x | some x in numbers.range(1, 100000)]) > 0}", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d, _, err := e.Decide(ctx, &policies.Input{})
	if !errors.Is(err, policies.ErrEvaluation) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Decide on a cancelled context = %v, want ErrEvaluation and context.Canceled", err)
	}
	if d.Allow {
		t.Error("decision on a cancelled context allows")
	}
}

func jsonNumber(s string) json.Number { return json.Number(s) }
