package policies_test

import (
	"testing"

	"github.com/writ-dev/writ/policies"
)

// envoyPolicy is an opa-envoy-plugin style policy doing the same work as
// the default policy's tools/call branch: a tool allowlist on the parsed
// JSON-RPC body and headers for the upstream.
const envoyPolicy = `package envoy.authz

default allow := false

allowed_tools := {"search_issues", "create_issue"}

allow := {
	"allowed": true,
	"headers": {"x-user": input.identity.user, "x-agent": input.identity.agent},
	"request_headers_to_remove": ["authorization"],
} if {
	input.attributes.request.http.method == "POST"
	input.parsed_body.method == "tools/call"
	input.parsed_body.params.name in allowed_tools
	startswith(input.attributes.request.http.headers.authorization, "Bearer ")
}
`

// BenchmarkDecide decides a delegated MCP tools/call with about fifteen
// request headers, with the default policy and with an opa-envoy-plugin
// style policy.
func BenchmarkDecide(b *testing.B) {
	in := fullInput()
	envoy := policies.NewEngine(policies.Options{})
	if _, err := envoy.LoadBundle(b.Context(), policies.Bundle{Modules: map[string]string{"authz.rego": envoyPolicy}}); err != nil {
		b.Fatal(err)
	}
	engines := []struct {
		name   string
		engine *policies.Engine
	}{
		{"default", policies.NewEngine(policies.Options{})},
		{"envoy", envoy},
	}
	for _, tt := range engines {
		d, _, err := tt.engine.Decide(b.Context(), in)
		if err != nil || !d.Allow {
			b.Fatalf("%s: decision %+v, %v; want allow", tt.name, d, err)
		}
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tt.engine.Decide(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := tt.engine.Decide(b.Context(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
