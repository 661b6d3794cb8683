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
		{"direct", func() (ast.Value, error) { return in.astValue(allInput) }},
		{"direct-used-only", func() (ast.Value, error) { return in.astValue(rev.use) }},
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
	direct, err := in.astValue(allInput)
	if err != nil {
		t.Fatal(err)
	}
	if viaMap.Compare(direct) != 0 {
		t.Errorf("conversions differ:\nvia map: %v\ndirect:  %v", viaMap, direct)
	}
}

func TestInputUse(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   inputUse
	}{
		{"default policy", DefaultBundle().Modules["authz.rego"], inputUse{claims: true}},
		{"whole input", "package writ.authz\ndecision := {\"allow\": true, \"dynamic_metadata\": input}", allInput},
		{"attributes only", "package envoy.authz\nallow if input.attributes.request.http.method == \"GET\"", inputUse{attributes: true}},
		{"variable key", "package envoy.authz\nallow if input[_].x", inputUse{attributes: true, parsedBody: true}},
		{"arguments through a variable", "package writ.authz\ndecision := {\"allow\": true} if input.mcp[_].q", inputUse{arguments: true}},
		{"no input", "package writ.authz\ndecision := {\"allow\": true}", inputUse{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := prepare(t.Context(), Bundle{Modules: map[string]string{"p.rego": tt.policy}}, "")
			if err != nil {
				t.Fatal(err)
			}
			if rev.use != tt.want {
				t.Errorf("inputUse = %+v, want %+v", rev.use, tt.want)
			}
		})
	}
}
