package policies

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

func benchInput() *Input {
	headers := map[string]any{}
	for _, k := range []string{":authority", ":method", ":path", ":scheme", "accept", "authorization", "content-type",
		"content-length", "mcp-method", "mcp-name", "mcp-protocol-version", "mcp-session-id", "user-agent",
		"x-forwarded-proto", "x-request-id"} {
		headers[k] = "value-of-" + k
	}
	return &Input{
		Attributes: map[string]any{"request": map[string]any{"http": map[string]any{
			"method": "POST", "path": "/mcp", "host": "tools.internal", "headers": headers}}},
		ParsedPath: []string{"mcp"},
		ParsedBody: map[string]any{"jsonrpc": "2.0", "id": 7.0, "method": "tools/call",
			"params": map[string]any{"name": "search_issues", "arguments": map[string]any{"q": "bug"}}},
		Identity: &Identity{User: "user-7", Agent: "research-bot", Tenant: "acme", Actors: []string{"research-bot"},
			Issuer: "https://idp.example", Scopes: []string{"tools.call"}, Claims: map[string]any{"sub": "user-7"}},
		MCP:      &MCP{Method: "tools/call", Name: "search_issues", Arguments: map[string]any{"q": "bug"}},
		Resource: &Resource{ID: "mcp://tools", Tenant: "acme", Extensions: map[string]string{"resource": "mcp://tools"}},
	}
}

// BenchmarkInputConversion compares converting Value's document (what
// rego.EvalInput does) with building the OPA value directly, in full and
// with only the members the default policy can read (it never reads
// input.attributes), both as a bare conversion and inside a decision.
func BenchmarkInputConversion(b *testing.B) {
	in := benchInput()
	eager := func() (ast.Value, error) { return ast.InterfaceToValue(in.Value()) }
	rev, err := prepare(b.Context(), DefaultBundle(), "")
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		convert func() (ast.Value, error)
	}{
		{"eager", eager},
		{"direct", func() (ast.Value, error) { return in.astValue(needAll) }},
		{"direct-used-only", func() (ast.Value, error) { return in.astValue(rev.need) }},
	} {
		b.Run(tt.name+"/convert", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tt.convert(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/decide", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := tt.convert()
				if err != nil {
					b.Fatal(err)
				}
				rs, err := rev.query.Eval(b.Context(), rego.EvalParsedInput(v))
				if err != nil || len(rs) != 1 {
					b.Fatal(rs, err)
				}
			}
		})
	}
}

func TestInputConversionsAgree(t *testing.T) {
	in := benchInput()
	viaMap, err := ast.InterfaceToValue(in.Value())
	if err != nil {
		t.Fatal(err)
	}
	direct, err := in.astValue(needAll)
	if err != nil {
		t.Fatal(err)
	}
	if viaMap.Compare(direct) != 0 {
		t.Errorf("conversions differ:\nvia map: %v\ndirect:  %v", viaMap, direct)
	}
}

func TestInputNeed(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   string
	}{
		{"default policy", DefaultBundle().Modules["authz.rego"],
			"{approval:{status:*} identity:{agent:* tenant:* user:*} mcp:{method:* name:*} resource:{id:* sensitivity:* tenant:*}}"},
		{"whole input", "package writ.authz\ndecision := {\"allow\": true, \"dynamic_metadata\": input}", "*"},
		{"attributes path", "package envoy.authz\nallow if input.attributes.request.http.method == \"GET\"",
			"{attributes:{request:{http:{method:*}}}}"},
		{"import alias", "package envoy.authz\nimport input.attributes.request.http\nallow if http.headers[\"x-a\"] == \"1\"",
			"{attributes:{request:{http:{headers:{x-a:*}}}}}"},
		{"variable key", "package envoy.authz\nallow if input[_].x", "*"},
		{"variable inside", "package writ.authz\ndecision := {\"allow\": true} if input.mcp[_].q", "{mcp:*}"},
		{"nested reference", "package writ.authz\ndecision := {\"allow\": data.x[input.mcp.name]}",
			"{mcp:{name:*}}"},
		{"nested reference in an existence test", "package writ.authz\ndecision := {\"allow\": true} if input.resource[input.mcp.name]",
			"{mcp:{name:*} resource:*}"},
		{"existence only", "package writ.authz\ndecision := {\"allow\": true} if { input.identity; not input.approval }",
			"{approval identity}"},
		{"existence and a member", "package writ.authz\ndecision := {\"allow\": true} if { not input.identity; input.identity.user == \"a\" }",
			"{identity:{user:*}}"},
		{"existence with a with value", "package writ.authz\nx if input.mcp\ndecision := {\"allow\": true} if { x with input.mcp as input.approval }",
			"{approval:* mcp:*}"},
		{"object argument", "package writ.authz\ndecision := {\"allow\": count(input.identity.claims) > 0}",
			"{identity:{claims:*}}"},
		{"no input", "package writ.authz\ndecision := {\"allow\": true}", "{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := prepare(t.Context(), Bundle{Modules: map[string]string{"p.rego": tt.policy}}, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := rev.need.String(); got != tt.want {
				t.Errorf("need = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPrunedInputDecidesAlike: for each policy, evaluating the input cut
// to what the policy can read gives the same result as the whole input.
func TestPrunedInputDecidesAlike(t *testing.T) {
	in := benchInput()
	in.ParsedBody.(map[string]any)["params"].(map[string]any)["cursor"] = nil
	in.ParsedBody.(map[string]any)["batch"] = false
	in.ParsedQuery = map[string][]string{"trace": {"1"}, "page": {"2", "3"}}
	in.Approval = &Approval{ID: "ap-1", Status: "approved"}
	in.Identity.Dev = true
	policies := map[string]string{
		"default":        DefaultBundle().Modules["authz.rego"],
		"nested null":    `decision := {"allow": true, "reason": json.marshal([input.parsed_body.params.cursor, input.parsed_body.params.name])}`,
		"false member":   `decision := {"allow": true} if input.parsed_body.batch` + "\n" + `default decision := {"allow": false}`,
		"not false":      `decision := {"allow": true, "reason": "not batch"} if not input.parsed_body.batch`,
		"missing key":    `decision := {"allow": true} if not input.parsed_body.params.missing`,
		"existence":      `decision := {"allow": true, "reason": "x"} if { input.identity; input.parsed_body.params; not input.attributes.nope }`,
		"query key":      `decision := {"allow": true, "scopes": input.parsed_query.page}`,
		"whole object":   `decision := {"allow": true, "dynamic_metadata": {"r": input.resource, "id": input.identity}}`,
		"headers":        `decision := {"allow": startswith(input.attributes.request.http.headers.authorization, "value-of")}`,
		"some in claims": `decision := {"allow": true, "scopes": [k | some k, _ in input.identity.claims]}`,
		"dev flag":       `decision := {"allow": input.identity.dev}`,
	}
	for name, body := range policies {
		t.Run(name, func(t *testing.T) {
			src := body
			if name != "default" {
				src = "package writ.authz\n" + body
			}
			rev, err := prepare(t.Context(), Bundle{Modules: map[string]string{"p.rego": src}}, "")
			if err != nil {
				t.Fatal(err)
			}
			if rev.need.all {
				t.Fatalf("need = %s; the policy should not read all of input", rev.need)
			}
			var got [2]ast.Value
			for i, n := range []*need{rev.need, needAll} {
				v, err := in.astValue(n)
				if err != nil {
					t.Fatal(err)
				}
				rs, err := rev.query.Eval(t.Context(), rego.EvalParsedInput(v))
				if err != nil || len(rs) != 1 {
					t.Fatalf("Eval = %v, %v", rs, err)
				}
				got[i] = rs[0].Expressions[0].Value.(ast.Value)
			}
			if got[0].Compare(got[1]) != 0 {
				t.Errorf("pruned input decides %v, whole input %v", got[0], got[1])
			}
		})
	}
}
