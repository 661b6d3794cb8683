package policies_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/policies"
)

// stats is an engine's cache counters.
type stats struct{ hits, misses uint64 }

func cacheStats(e *policies.Engine) stats {
	h, m := e.CacheStats()
	return stats{h, m}
}

// newEngine returns an engine with the decision cache of size (0 for the
// default), closed when the test ends.
func newEngine(t *testing.T, size int) *policies.Engine {
	t.Helper()
	e := policies.NewEngine(policies.Options{DecisionCacheSize: size, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(e.Close)
	return e
}

func load(t *testing.T, e *policies.Engine, modules map[string]string) string {
	t.Helper()
	rev, err := e.LoadBundle(t.Context(), policies.Bundle{Modules: modules})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func decide(t *testing.T, e *policies.Engine, in *policies.Input) policies.Decision {
	t.Helper()
	d, _, err := e.Decide(t.Context(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

func TestDecisionCacheHit(t *testing.T) {
	e := newEngine(t, 0)
	in := delegatedCall("search_issues")
	first := decide(t, e, in)
	if got, want := cacheStats(e), (stats{0, 1}); got != want {
		t.Fatalf("after the first decision: %+v, want %+v", got, want)
	}
	e.Wait()
	second := decide(t, e, delegatedCall("search_issues")) // an equal input, built anew
	if got, want := cacheStats(e), (stats{1, 1}); got != want {
		t.Fatalf("after the same input again: %+v, want %+v", got, want)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("cached decision differs (-first +cached):\n%s", diff)
	}
}

// baseCall is a delegated call to a high-sensitivity resource, approved.
func baseCall() *policies.Input {
	return &policies.Input{
		Identity: &policies.Identity{User: "alice", Agent: "research-bot", Tenant: "acme", Actors: []string{"research-bot"},
			Issuer: "https://idp.example", Scopes: []string{"tools.call"}, Claims: map[string]any{"sub": "alice"}},
		MCP:      &policies.MCP{Method: "tools/call", Name: "refund", Arguments: map[string]any{"amount": 120.0}},
		Resource: &policies.Resource{ID: "https://billing.internal", Tenant: "acme", Sensitivity: "high", Extensions: map[string]string{"team": "billing"}},
		Approval: &policies.Approval{ID: "ap-1", Status: "approved"},
	}
}

// TestDecisionCacheKeyedOnReadFields: after baseCall is cached, a change
// to a field the default policy reads misses and is decided afresh; a
// change to a field it cannot read hits.
func TestDecisionCacheKeyedOnReadFields(t *testing.T) {
	fresh := newEngine(t, -1)
	tests := []struct {
		name   string
		change func(*policies.Input)
		hit    bool
	}{
		{"identity.user", func(in *policies.Input) { in.Identity.User = "bob" }, false},
		{"identity.agent", func(in *policies.Input) { in.Identity.Agent = "other-bot" }, false},
		{"identity.tenant", func(in *policies.Input) { in.Identity.Tenant = "globex" }, false},
		{"no identity", func(in *policies.Input) { in.Identity = nil }, false},
		{"mcp.method", func(in *policies.Input) { in.MCP.Method = "prompts/get" }, false},
		{"mcp.name", func(in *policies.Input) { in.MCP.Name = "refund_all" }, false},
		{"resource.id", func(in *policies.Input) { in.Resource.ID = "https://ledger.internal" }, false},
		{"resource.tenant", func(in *policies.Input) { in.Resource.Tenant = "globex" }, false},
		{"resource.tenant from an extension", func(in *policies.Input) {
			in.Resource.Tenant = ""
			in.Resource.Extensions["tenant"] = "globex"
		}, false},
		{"resource.sensitivity", func(in *policies.Input) { in.Resource.Sensitivity = "low" }, false},
		{"approval.status", func(in *policies.Input) { in.Approval.Status = "denied" }, false},
		{"no approval", func(in *policies.Input) { in.Approval = nil }, false},
		{"mcp.arguments", func(in *policies.Input) { in.MCP.Arguments = map[string]any{"amount": 1e9, "to": "mallory"} }, true},
		{"identity.claims, scopes, actors, issuer", func(in *policies.Input) {
			in.Identity.Claims = map[string]any{"sub": "alice", "admin": true}
			in.Identity.Scopes = []string{"everything"}
			in.Identity.Actors = nil
			in.Identity.Issuer = "https://other.example"
		}, true},
		{"approval.id", func(in *policies.Input) { in.Approval.ID = "ap-2" }, true},
		{"other context extensions", func(in *policies.Input) { in.Resource.Extensions["team"] = "ops" }, true},
		{"request attributes, path, query and body", func(in *policies.Input) {
			in.Attributes = map[string]any{"request": map[string]any{"http": map[string]any{"method": "DELETE"}}}
			in.ParsedPath = []string{"admin"}
			in.ParsedQuery = map[string][]string{"sudo": {"1"}}
			in.ParsedBody = map[string]any{"method": "tools/call"}
			in.TruncatedBody = true
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, 0)
			base := decide(t, e, baseCall())
			e.Wait()
			in := baseCall()
			tt.change(in)
			got := decide(t, e, in)
			want := stats{0, 2}
			if tt.hit {
				want = stats{1, 1}
			}
			if s := cacheStats(e); s != want {
				t.Errorf("stats %+v, want %+v", s, want)
			}
			if diff := cmp.Diff(decide(t, fresh, in), got); diff != "" {
				t.Errorf("decision differs from an uncached engine's (-fresh +got):\n%s", diff)
			}
			if tt.hit {
				if diff := cmp.Diff(base, got); diff != "" {
					t.Errorf("hit differs from the cached decision (-cached +got):\n%s", diff)
				}
			}
		})
	}
}

// TestDecisionCacheMatchesFresh decides the whole default-policy table
// twice on caching engines, the second time from the cache, and compares
// every decision with the table and with the first pass.
func TestDecisionCacheMatchesFresh(t *testing.T) {
	cases := defaultPolicyCases()
	engines := map[string]*policies.Engine{}
	engineFor := func(data map[string]any) *policies.Engine {
		k := fmt.Sprint(data)
		if e, ok := engines[k]; ok {
			return e
		}
		e := newEngine(t, 0)
		if data != nil {
			b := policies.DefaultBundle()
			b.Data = data
			if _, err := e.LoadBundle(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
		engines[k] = e
		return e
	}
	first := make([]policies.Decision, len(cases))
	for i, tt := range cases {
		first[i] = decide(t, engineFor(tt.data), tt.in)
	}
	hitsBefore := map[*policies.Engine]uint64{}
	for _, e := range engines {
		e.Wait()
		hitsBefore[e], _ = e.CacheStats()
	}
	for i, tt := range cases {
		e := engineFor(tt.data)
		got := decide(t, e, tt.in)
		if h, _ := e.CacheStats(); h != hitsBefore[e]+1 {
			t.Errorf("%s: second decision was not a hit (hits %d, before %d)", tt.name, h, hitsBefore[e])
		}
		hitsBefore[e]++
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: cached decision (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(first[i], got); diff != "" {
			t.Errorf("%s: cached decision differs from the fresh one (-fresh +cached):\n%s", tt.name, diff)
		}
	}
}

// TestDecisionCacheNondeterministicPolicies: a revision that refers to a
// nondeterministic builtin anywhere is never cached: its requests count
// neither as hits nor as misses, and each decision is evaluated afresh.
func TestDecisionCacheNondeterministicPolicies(t *testing.T) {
	tests := []struct {
		name    string
		modules map[string]string
		// varies: successive decisions differ, as they must when evaluated.
		varies bool
	}{
		{"time.now_ns", map[string]string{"p.rego": `package writ.authz
decision := {"allow": true, "reason": sprintf("%d", [time.now_ns()])}`}, true},
		{"uuid.rfc4122", map[string]string{"p.rego": `package writ.authz
decision := {"allow": true, "reason": uuid.rfc4122(input.identity.user)}`}, true},
		{"rand.intn in a function in another package", map[string]string{
			"p.rego":   "package writ.authz\nimport data.lib\ndecision := {\"allow\": true, \"reason\": sprintf(\"%d\", [lib.roll(input.identity.user)])}",
			"lib.rego": "package lib\nroll(seed) := rand.intn(seed, 1000000000000)",
		}, true},
		{"http.send never reached", map[string]string{"p.rego": `package writ.authz
decision := {"allow": true}
fetched := http.send({"method": "GET", "url": "http://127.0.0.1:1/"}) if false`}, false},
		{"time.parse_rfc3339_ns", map[string]string{"p.rego": `package writ.authz
decision := {"allow": time.parse_rfc3339_ns("2026-01-01T00:00:00Z") > 0}`}, false},
		{"io.jwt.decode_verify", map[string]string{"p.rego": `package writ.authz
default decision := {"allow": false}
decision := {"allow": true} if io.jwt.decode_verify("eyJhbGciOiJIUzI1NiJ9.e30.c2ln", {"secret": "k"})[0]`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			e := policies.NewEngine(policies.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer e.Close()
			load(t, e, tt.modules)
			if !strings.Contains(logs.String(), "decisions of this policy revision are not cached") {
				t.Errorf("the load did not log that the revision is not cached:\n%s", logs.String())
			}
			in := delegatedCall("search_issues")
			seen := map[string]bool{}
			for range 3 {
				d := decide(t, e, in)
				seen[d.Reason] = true
				e.Wait()
			}
			if s := cacheStats(e); s != (stats{}) {
				t.Errorf("stats %+v, want none", s)
			}
			if tt.varies && len(seen) != 3 {
				t.Errorf("decisions %v repeat; each should be evaluated afresh", seen)
			}
		})
	}
}

func TestDecisionCacheRevisionSwap(t *testing.T) {
	e := newEngine(t, 0)
	in := delegatedCall("search_issues")
	defaultRev := e.Revision()
	before := decide(t, e, in)
	e.Wait()
	decide(t, e, in)
	if s := cacheStats(e); s != (stats{1, 1}) {
		t.Fatalf("stats %+v before the swap, want a hit", s)
	}

	other := load(t, e, map[string]string{"p.rego": `package writ.authz
decision := {"allow": false, "reason": "swapped"}`})
	d, rev, err := e.Decide(t.Context(), in)
	if err != nil || rev != other || d.Reason != "swapped" {
		t.Fatalf("after the swap: %+v, %q, %v; want the new revision's decision", d, rev, err)
	}
	if s := cacheStats(e); s != (stats{1, 2}) {
		t.Errorf("stats %+v after the swap, want a miss", s)
	}

	// Loading the default again is a new load of it: the first load's
	// entries are not served, though the revision id is the same.
	if got, err := e.LoadBundle(t.Context(), policies.DefaultBundle()); err != nil || got != defaultRev {
		t.Fatalf("reload of the default = %q, %v", got, err)
	}
	e.Wait()
	d, rev, err = e.Decide(t.Context(), in)
	if err != nil || rev != defaultRev {
		t.Fatalf("after swapping back: %q, %v", rev, err)
	}
	if s := cacheStats(e); s != (stats{1, 3}) {
		t.Errorf("stats %+v after swapping back, want a miss", s)
	}
	if diff := cmp.Diff(before, d); diff != "" {
		t.Errorf("decision after swapping back (-before +after):\n%s", diff)
	}
}

func TestDecisionCacheSkipsErrors(t *testing.T) {
	e := newEngine(t, 0)
	load(t, e, map[string]string{"p.rego": `package writ.authz
decision := {"allow": to_number(input.mcp.name) > 1}`})
	in := delegatedCall("not a number")
	for range 2 {
		if _, _, err := e.Decide(t.Context(), in); !errors.Is(err, policies.ErrEvaluation) {
			t.Fatalf("Decide = %v, want ErrEvaluation", err)
		}
		e.Wait()
	}
	if s := cacheStats(e); s != (stats{0, 2}) {
		t.Errorf("stats %+v, want two misses: an error is never cached", s)
	}

	// A cancelled request fails even when its decision is cached.
	ok := delegatedCall("2")
	decide(t, e, ok)
	e.Wait()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if d, _, err := e.Decide(ctx, ok); !errors.Is(err, context.Canceled) || d.Allow {
		t.Errorf("Decide on a cancelled context = %+v, %v; want context.Canceled", d, err)
	}
}

func TestDecisionCacheDisabled(t *testing.T) {
	e := newEngine(t, -1)
	in := delegatedCall("search_issues")
	for range 3 {
		if d := decide(t, e, in); !d.Allow {
			t.Fatalf("decision %+v, want allow", d)
		}
		e.Wait()
	}
	if s := cacheStats(e); s != (stats{}) {
		t.Errorf("stats %+v with the cache disabled, want none", s)
	}
}

// TestDecisionCacheConcurrent decides for many callers at once while the
// revision swaps between two policies that answer with the revision's
// name and the caller. Every decision must be the one its revision makes
// for that caller: never another caller's, never another revision's.
func TestDecisionCacheConcurrent(t *testing.T) {
	e := newEngine(t, 0)
	policy := func(name string) map[string]string {
		return map[string]string{"p.rego": fmt.Sprintf(`package writ.authz
decision := {"allow": true, "reason": concat(" ", [%q, input.identity.user, input.identity.agent]), "headers": {"x-user": input.identity.user}}`, name)}
	}
	names := map[string]string{load(t, e, policy("B")): "B"}
	names[load(t, e, policy("A"))] = "A"

	const workers, perWorker = 8, 400
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				user, agent := fmt.Sprintf("user-%d", (w*perWorker+i)%50), fmt.Sprintf("agent-%d", i%4)
				in := &policies.Input{Identity: &policies.Identity{User: user, Agent: agent}}
				d, rev, err := e.Decide(t.Context(), in)
				if err != nil {
					t.Errorf("Decide: %v", err)
					return
				}
				want := names[rev] + " " + user + " " + agent
				if d.Reason != want || d.Headers["x-user"] != user {
					t.Errorf("decision %q (x-user %q) under %s, want %q", d.Reason, d.Headers["x-user"], names[rev], want)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			name := []string{"A", "B"}[i%2]
			if _, err := e.LoadBundle(t.Context(), policies.Bundle{Modules: policy(name)}); err != nil {
				t.Errorf("LoadBundle: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if h, m := e.CacheStats(); h+m != workers*perWorker {
		t.Errorf("hits %d + misses %d, want every one of %d decisions counted", h, m, workers*perWorker)
	}
}

// TestDecisionCacheAttributes: with the cache on, AttributesFunc is called
// once per decision, hit or miss, when the policy reads input.attributes,
// and never when it does not; attributes that differ in what the policy
// reads are never answered from another request's entry.
func TestDecisionCacheAttributes(t *testing.T) {
	attrs := func(method string) map[string]any {
		return map[string]any{"request": map[string]any{"http": map[string]any{"method": method, "id": "ignored-" + method}}}
	}
	reads := map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": true, \"reason\": input.attributes.request.http.method}"}
	ignores := map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": true, \"reason\": input.mcp.name}"}
	tests := []struct {
		name      string
		modules   map[string]string
		method    string // the attributes of the second request
		wantCalls int    // per decision
		want      string // the second decision's reason
		wantStats stats
	}{
		{"policy reads attributes, same method", reads, "POST", 1, "POST", stats{1, 1}},
		{"policy reads attributes, other method", reads, "GET", 1, "GET", stats{0, 2}},
		{"policy ignores attributes", ignores, "GET", 0, "search_issues", stats{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, 0)
			load(t, e, tt.modules)
			for i, method := range []string{"POST", tt.method} {
				in := delegatedCall("search_issues")
				calls := 0
				in.AttributesFunc = func() map[string]any { calls++; return attrs(method) }
				d := decide(t, e, in)
				e.Wait()
				if calls != tt.wantCalls {
					t.Errorf("decision %d: AttributesFunc called %d times, want %d", i+1, calls, tt.wantCalls)
				}
				if i == 1 && d.Reason != tt.want {
					t.Errorf("second decision reason %q, want %q", d.Reason, tt.want)
				}
			}
			if s := cacheStats(e); s != tt.wantStats {
				t.Errorf("stats %+v, want %+v", s, tt.wantStats)
			}
		})
	}
}

// TestDecisionCacheNumberSpellings: a number is the same input whatever
// Go type holds it, so a request with 1 as a json.Number hits the entry
// made for 1 as a float64, and one with 2 does not.
func TestDecisionCacheNumberSpellings(t *testing.T) {
	e := newEngine(t, 0)
	load(t, e, map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": input.mcp.arguments.n == 1, \"reason\": sprintf(\"%v\", [input.mcp.arguments.n])}"})
	call := func(n any) *policies.Input {
		in := delegatedCall("x")
		in.MCP.Arguments = map[string]any{"n": n}
		return in
	}
	first := decide(t, e, call(1.0))
	e.Wait()
	for _, n := range []any{json.Number("1"), 1, int64(1), uint64(1)} {
		if d := decide(t, e, call(n)); d.Reason != first.Reason || !d.Allow {
			t.Errorf("%T 1: decision %+v, want %+v", n, d, first)
		}
	}
	if d := decide(t, e, call(json.Number("2"))); d.Allow || d.Reason != "2" {
		t.Errorf("2: decision %+v, want a denial for 2", d)
	}
	if got, want := cacheStats(e), (stats{4, 2}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}
