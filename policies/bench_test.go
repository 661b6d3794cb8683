package policies_test

import (
	"fmt"
	"sync/atomic"
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

// workload is what the load tool sends: a delegated MCP tools/call of
// the same tool, with about fifteen request headers, from 1,000 distinct
// users through 10 agents.
func workload() []*policies.Input {
	ins := make([]*policies.Input, 0, 10_000)
	for u := range 1000 {
		for a := range 10 {
			in := fullInput()
			in.Identity.User = fmt.Sprintf("user-%d", u)
			in.Identity.Agent = fmt.Sprintf("agent-%d", a)
			in.Identity.Claims["sub"] = in.Identity.User
			ins = append(ins, in)
		}
	}
	return ins
}

// BenchmarkDecide decides the workload with the default policy and with
// an opa-envoy-plugin style policy, each with the decision cache disabled
// (uncached: every request evaluated) and enabled and warm (cached).
func BenchmarkDecide(b *testing.B) {
	ins := workload()
	for _, policy := range []string{"default", "envoy"} {
		for _, cache := range []string{"uncached", "cached"} {
			opts := policies.Options{}
			if cache == "uncached" {
				opts.DecisionCacheSize = -1
			}
			e := policies.NewEngine(opts)
			if policy == "envoy" {
				if _, err := e.LoadBundle(b.Context(), policies.Bundle{Modules: map[string]string{"authz.rego": envoyPolicy}}); err != nil {
					b.Fatal(err)
				}
			}
			for _, in := range ins { // the first pass fills the cache
				d, _, err := e.Decide(b.Context(), in)
				if err != nil || !d.Allow {
					b.Fatalf("%s: decision %+v, %v; want allow", policy, d, err)
				}
			}
			e.Wait()
			b.Run(policy+"/"+cache, func(b *testing.B) {
				b.ReportAllocs()
				h0, m0 := e.CacheStats()
				i := 0
				for b.Loop() {
					if _, _, err := e.Decide(b.Context(), ins[i%len(ins)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				reportHitRatio(b, e, h0, m0)
			})
			b.Run(policy+"/"+cache+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				h0, m0 := e.CacheStats()
				var workers atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(workers.Add(1)) * 997
					for pb.Next() {
						if _, _, err := e.Decide(b.Context(), ins[i%len(ins)]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
				reportHitRatio(b, e, h0, m0)
			})
			e.Close()
		}
	}
}

func reportHitRatio(b *testing.B, e *policies.Engine, h0, m0 uint64) {
	h, m := e.CacheStats()
	if n := (h - h0) + (m - m0); n > 0 {
		b.ReportMetric(float64(h-h0)/float64(n), "hit-ratio")
	}
}
