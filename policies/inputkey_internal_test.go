package policies

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputGen makes random inputs from a small vocabulary, so that random
// pairs often share members and values, with every representation the
// conversion accepts (and a few it rejects).
type inputGen struct{ r *rand.Rand }

func newInputGen(seed uint64) *inputGen { return &inputGen{rand.New(rand.NewPCG(seed, 0x5eed))} }

var (
	genStrings = []string{"", "a", "b", "ab", "id", "tenant", "sensitivity", "x y", "é", "\x00"}
	genKeys    = []string{"a", "b", "id", "x", "user", "tenant", "sensitivity", "request", "method"}
	genScalars = []any{
		nil, true, false, "", "1", "a",
		1, int64(1), uint64(1), 1.0, json.Number("1"), // the same number, each way
		json.Number("1.0"), 1.5, json.Number("1.5"), json.Number("15e-1"),
		uint64(1 << 63), int64(math.MinInt64), // OPA converts uint64 as int: these are equal
		math.Copysign(0, -1), json.Number("-0"), 0, 1e21, json.Number("1e+21"),
	}
	// genBad are values the conversion rejects.
	genBad = []any{json.Number("1e999999"), struct{}{}, []int{1}, map[string]int{"a": 1}}
)

func (g *inputGen) pick(n int) int        { return g.r.IntN(n) }
func (g *inputGen) chance(p float64) bool { return g.r.Float64() < p }
func (g *inputGen) str() string           { return genStrings[g.pick(len(genStrings))] }
func (g *inputGen) key() string           { return genKeys[g.pick(len(genKeys))] }

func (g *inputGen) strs() []string {
	switch g.pick(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	ss := make([]string, 1+g.pick(2))
	for i := range ss {
		ss[i] = g.str()
	}
	return ss
}

// value is a JSON-shaped Go value; bad values are rare, as is nesting past
// the depth the conversion allows.
func (g *inputGen) value(depth int) any {
	if g.chance(0.005) {
		return genBad[g.pick(len(genBad))]
	}
	if g.chance(0.003) {
		var v any = "deep"
		for range maxInputDepth + 2 {
			v = []any{v}
		}
		return v
	}
	if depth >= 3 {
		return genScalars[g.pick(len(genScalars))]
	}
	switch g.pick(8) {
	case 0, 1, 2:
		return genScalars[g.pick(len(genScalars))]
	case 3:
		a := make([]any, g.pick(3))
		for i := range a {
			a[i] = g.value(depth + 1)
		}
		return a
	case 4:
		return g.strs()
	case 5:
		m := map[string]string{}
		for range g.pick(3) {
			m[g.key()] = g.str()
		}
		return m
	default:
		return g.object(depth)
	}
}

func (g *inputGen) object(depth int) map[string]any {
	if g.chance(0.15) {
		return nil
	}
	m := map[string]any{}
	for range g.pick(4) {
		m[g.key()] = g.value(depth + 1)
	}
	return m
}

func (g *inputGen) stringMap() map[string]string {
	if g.chance(0.2) {
		return nil
	}
	m := map[string]string{}
	for range g.pick(4) {
		m[[]string{"id", "tenant", "sensitivity", "team", "a"}[g.pick(5)]] = g.str()
	}
	return m
}

func (g *inputGen) input() *Input {
	in := &Input{}
	switch g.pick(3) {
	case 0:
		in.Attributes = g.object(0)
	case 1:
		attrs := g.object(0)
		in.AttributesFunc = func() map[string]any { return attrs }
	}
	if g.chance(0.7) {
		in.ParsedPath = g.strs()
	}
	if g.chance(0.6) {
		in.ParsedQuery = map[string][]string{}
		for range g.pick(3) {
			in.ParsedQuery[g.key()] = g.strs()
		}
	}
	if g.chance(0.7) {
		in.ParsedBody = g.value(0)
	}
	in.TruncatedBody = g.chance(0.3)
	if g.chance(0.8) {
		in.Identity = &Identity{User: g.str(), Agent: g.str(), Tenant: g.str(), Actors: g.strs(), Issuer: g.str(),
			Scopes: g.strs(), SPIFFEID: g.str(), Claims: g.object(0), Dev: g.chance(0.5)}
	}
	if g.chance(0.8) {
		in.MCP = &MCP{Method: g.str(), Name: g.str(), Arguments: g.object(0)}
	}
	if g.chance(0.8) {
		in.Resource = &Resource{ID: g.str(), Tenant: g.str(), Sensitivity: g.str(), Extensions: g.stringMap()}
	}
	if g.chance(0.6) {
		in.Approval = &Approval{ID: g.str(), Status: g.str()}
	}
	return in
}

var genTop = []string{"attributes", "parsed_path", "parsed_query", "parsed_body", "truncated_body",
	"identity", "mcp", "resource", "approval", "nope"}

var genInner = append([]string{"actors", "agent", "claims", "dev", "issuer", "scopes", "spiffe_id",
	"arguments", "name", "status", "http", "params"}, genKeys...)

// need is what a random policy reads: everything, or a few references,
// some read only for existence, some reaching everything below a
// variable. Half are sealed, as prepare seals them.
func (g *inputGen) need() *need {
	if g.chance(0.1) {
		return needAll
	}
	n := &need{}
	for range 1 + g.pick(5) {
		ref := ast.Ref{ast.VarTerm("input"), ast.StringTerm(genTop[g.pick(len(genTop))])}
		for range g.pick(4) {
			ref = append(ref, ast.StringTerm(genInner[g.pick(len(genInner))]))
		}
		if g.chance(0.15) {
			ref = append(ref, ast.VarTerm("k"))
		}
		n.add(ref, g.chance(0.3))
	}
	if g.chance(0.5) {
		n.seal()
	}
	return n
}

// respell deep-copies x, choosing another spelling wherever the
// conversion gives the same value: a number in another Go type, an empty
// object or array as nil and back.
func (g *inputGen) respell(x any) any {
	switch x := x.(type) {
	case int, int64, uint64, float64, json.Number:
		if n, ok := x.(json.Number); ok && n == "1" || x == any(1) || x == any(int64(1)) || x == any(uint64(1)) || x == any(1.0) {
			return []any{1, int64(1), uint64(1), 1.0, json.Number("1")}[g.pick(5)]
		}
		return x
	case []any:
		if len(x) == 0 && g.chance(0.5) {
			return []any(nil)
		}
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = g.respell(v)
		}
		return out
	case []string:
		if len(x) == 0 && g.chance(0.5) {
			return []string(nil)
		}
		return append([]string{}, x...)
	case map[string]any:
		if len(x) == 0 && g.chance(0.5) {
			if x == nil {
				return map[string]any{}
			}
			return map[string]any(nil)
		}
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = g.respell(v)
		}
		return out
	}
	return x
}

// variant returns a copy of in with one member regenerated, or with
// values respelled, or with a member the need may not read changed.
func (g *inputGen) variant(in *Input) *Input {
	out := *in
	respellObject := func(m map[string]any) map[string]any {
		v, _ := g.respell(m).(map[string]any)
		return v
	}
	if in.Identity != nil {
		id := *in.Identity
		out.Identity = &id
	}
	if in.MCP != nil {
		c := *in.MCP
		out.MCP = &c
	}
	if in.Resource != nil {
		r := *in.Resource
		out.Resource = &r
	}
	if in.Approval != nil {
		a := *in.Approval
		out.Approval = &a
	}
	out.Attributes = respellObject(in.Attributes)
	if in.AttributesFunc != nil {
		attrs := respellObject(in.AttributesFunc())
		out.AttributesFunc = func() map[string]any { return attrs }
	}
	if in.ParsedBody != nil {
		out.ParsedBody = g.respell(in.ParsedBody)
	}
	if out.Identity != nil {
		out.Identity.Claims = respellObject(in.Identity.Claims)
	}
	if out.MCP != nil {
		out.MCP.Arguments = respellObject(in.MCP.Arguments)
	}
	switch g.pick(12) {
	case 0:
		out.ParsedBody = g.value(0)
	case 1:
		if out.Identity != nil {
			out.Identity.User = g.str()
		}
	case 2:
		if out.Identity != nil {
			out.Identity.Claims = g.object(0)
		}
	case 3:
		if out.MCP != nil {
			out.MCP.Arguments = g.object(0)
		}
	case 4:
		if out.Resource != nil {
			out.Resource.Extensions = g.stringMap()
		}
	case 5:
		out.Approval = nil
	case 6:
		out.Attributes = g.object(0)
	case 7:
		out.ParsedPath = g.strs()
	case 8:
		out.TruncatedBody = !out.TruncatedBody
	}
	return &out
}

// goKey is keyFromGo's canonical input, nil when it has none.
func goKey(t testing.TB, in *Input, n *need) []byte {
	t.Helper()
	k, ok := keyFromGo(&revision{id: "sha256:0123456789abcdef", generation: 7, need: n}, in, in.attributesFor(n))
	if !ok {
		return nil
	}
	defer k.release()
	return bytes.Clone(k.canonical)
}

// checkMirrors: keyFromGo has a key exactly when astValue converts the
// input, and the key is the canonical encoding of the converted value.
func checkMirrors(t *testing.T, in *Input, n *need) {
	t.Helper()
	v, err := in.astValue(n)
	k := goKey(t, in, n)
	switch {
	case err != nil && k != nil:
		t.Fatalf("need %s: astValue fails (%v) but keyFromGo gives a key", n, err)
	case err == nil && k == nil:
		t.Fatalf("need %s: keyFromGo gives no key for %v", n, v)
	case err == nil:
		if want := canonical(t, v); !bytes.Equal(k, want) {
			t.Fatalf("need %s: keyFromGo differs from the encoding of %v:\n got %q\nwant %q", n, v, k, want)
		}
	}
}

// checkPair: equal keys mean equal OPA inputs; equal OPA inputs with the
// same number spellings mean equal keys.
func checkPair(t *testing.T, a, b *Input, n *need) {
	t.Helper()
	va, errA := a.astValue(n)
	vb, errB := b.astValue(n)
	ka, kb := goKey(t, a, n), goKey(t, b, n)
	if ka != nil && kb != nil && bytes.Equal(ka, kb) {
		if errA != nil || errB != nil {
			t.Fatalf("need %s: equal keys, but conversion fails: %v, %v", n, errA, errB)
		}
		if ast.Compare(va, vb) != 0 {
			t.Fatalf("need %s: equal keys for different inputs:\n%v\n%v", n, va, vb)
		}
	}
	if errA == nil && errB == nil && ast.Compare(va, vb) == 0 && va.String() == vb.String() && !bytes.Equal(ka, kb) {
		t.Fatalf("need %s: the same input has different keys: %v", n, va)
	}
}

// policyNeeds are the needs of real policies, beside random ones.
func policyNeeds(t testing.TB) []*need {
	needs := []*need{needAll}
	for _, src := range []string{
		DefaultBundle().Modules["authz.rego"],
		envoyPolicyForTest,
		"package writ.authz\ndecision := {\"allow\": true} if { input.identity; not input.approval; input.parsed_body.params; input.parsed_query.page }",
		"package writ.authz\ndecision := {\"allow\": true, \"dynamic_metadata\": {\"r\": input.resource, \"c\": input.identity.claims.sub, \"a\": input.mcp.arguments[_]}}",
	} {
		rev, err := prepare(t.Context(), Bundle{Modules: map[string]string{"p.rego": src}}, "")
		if err != nil {
			t.Fatal(err)
		}
		needs = append(needs, rev.need)
	}
	return needs
}

const envoyPolicyForTest = `package envoy.authz
default allow := false
allow if {
	input.attributes.request.http.method == "POST"
	input.parsed_body.params.name == "x"
	startswith(input.attributes.request.http.headers.authorization, "Bearer ")
}`

// TestKeyFromGoMatchesAST is the property keyFromGo rests on, over
// random inputs and needs, and the needs of real policies.
func TestKeyFromGoMatchesAST(t *testing.T) {
	needs := policyNeeds(t)
	iterations := 20000
	if testing.Short() {
		iterations = 2000
	}
	for seed := range uint64(iterations) {
		g := newInputGen(seed)
		in := g.input()
		n := g.need()
		if seed%4 == 0 {
			n = needs[g.pick(len(needs))]
		}
		checkMirrors(t, in, n)
		b := g.variant(in)
		checkMirrors(t, b, n)
		checkPair(t, in, b, n)
	}
}

// FuzzKeyFromGo: for inputs and needs drawn from the seeds, keyFromGo
// mirrors the conversion, and two inputs share a key only when they are
// the same OPA input.
func FuzzKeyFromGo(f *testing.F) {
	for _, s := range [][3]uint64{{1, 2, 0}, {3, 3, 1}, {7, 11, 2}, {42, 43, 3}, {1000, 1000, 4}} {
		f.Add(s[0], s[1], s[2])
	}
	needs := policyNeeds(f)
	f.Fuzz(func(t *testing.T, seedA, seedB, seedN uint64) {
		n := newInputGen(seedN).need()
		if seedN%3 == 0 {
			n = needs[seedN/3%uint64(len(needs))]
		}
		a := newInputGen(seedA).input()
		var b *Input
		if seedA == seedB {
			b = newInputGen(seedB ^ 0xabcdef).variant(a)
		} else {
			b = newInputGen(seedB).input()
		}
		checkMirrors(t, a, n)
		checkMirrors(t, b, n)
		checkPair(t, a, b, n)
	})
}

// TestKeyFromGoSpellings pins the cases that matter for the hit rate and
// for correctness: spellings the conversion makes equal share a key, and
// values it keeps apart do not.
func TestKeyFromGoSpellings(t *testing.T) {
	claims := func(v any) *Input { return &Input{Identity: &Identity{Claims: map[string]any{"n": v}}} }
	n := &need{}
	n.add(ast.MustParseRef("input.identity.claims"), false)
	n.add(ast.MustParseRef("input.parsed_body"), false)
	n.seal()
	tests := []struct {
		name string
		a, b *Input
		same bool
	}{
		{"int and float64", claims(1), claims(1.0), true},
		{"int and json.Number", claims(1), claims(json.Number("1")), true},
		{"int64 and uint64", claims(int64(7)), claims(uint64(7)), true},
		{"float64 and json.Number", claims(1.5), claims(json.Number("1.5")), true},
		{"uint64 past MaxInt64 wraps as OPA converts it", claims(uint64(1 << 63)), claims(int64(math.MinInt64)), true},
		{"1 and 1.0", claims(json.Number("1")), claims(json.Number("1.0")), false}, // a miss, never a wrong decision
		{"number and string", claims(1), claims("1"), false},
		{"null and absent", claims(nil), &Input{Identity: &Identity{Claims: map[string]any{}}}, false},
		{"nil and empty nested object", claims(map[string]any(nil)), claims(map[string]any{}), true},
		{"nil and empty nested array", claims([]any(nil)), claims([]any{}), true},
		{"[]string and []any", claims([]string{"a"}), claims([]any{"a"}), true},
		{"map[string]string and map[string]any", claims(map[string]string{"a": "b"}), claims(map[string]any{"a": "b"}), true},
		{"nil and empty claims", &Input{Identity: &Identity{}}, &Input{Identity: &Identity{Claims: map[string]any{}}}, true},
		{"no body and empty body", &Input{}, &Input{ParsedBody: map[string]any{}}, false},
		{"null body and nil object body", &Input{}, &Input{ParsedBody: map[string]any(nil)}, false},
		{"no identity and empty identity", &Input{}, &Input{Identity: &Identity{}}, false},
		{"string split differently", claims([]any{"ab", "c"}), claims([]any{"a", "bc"}), false},
		{"nested array boundaries", claims([]any{[]any{"a"}, "b"}), claims([]any{[]any{"a", "b"}}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMirrors(t, tt.a, n)
			checkMirrors(t, tt.b, n)
			checkPair(t, tt.a, tt.b, n)
			if same := bytes.Equal(goKey(t, tt.a, n), goKey(t, tt.b, n)); same != tt.same {
				t.Errorf("same key = %v, want %v", same, tt.same)
			}
		})
	}
}

// TestKeyFromGoRejects: no key for what the conversion rejects.
func TestKeyFromGoRejects(t *testing.T) {
	for name, in := range map[string]*Input{
		"a channel in claims":   {Identity: &Identity{Claims: map[string]any{"c": make(chan int)}}},
		"a number out of range": {ParsedBody: map[string]any{"n": json.Number("1e999999")}},
		"a struct in the body":  {ParsedBody: struct{}{}},
	} {
		if _, err := in.astValue(needAll); err == nil {
			t.Fatalf("%s: astValue accepts it", name)
		}
		if k := goKey(t, in, needAll); k != nil {
			t.Errorf("%s: keyFromGo gives a key", name)
		}
	}
}

// TestKeyFromGoDepthLimit: around the nesting limit, keyFromGo gives a
// key exactly when the conversion accepts the input, whether the policy
// reads the nested value whole or member by member.
func TestKeyFromGoDepthLimit(t *testing.T) {
	for depth := maxInputDepth - 1; depth <= maxInputDepth+1; depth++ {
		// The innermost value sits depth levels below input.mcp.arguments.
		var v any = "x"
		ref := "input.mcp.arguments"
		for range depth {
			v = map[string]any{"a": v}
			ref += ".a"
		}
		pruned := &need{}
		pruned.add(ast.MustParseRef(ref), false)
		pruned.seal()
		existence := &need{}
		existence.add(ast.MustParseRef(ref), true)
		for _, n := range []*need{needAll, pruned, existence} {
			for _, inner := range []any{"x", []any{}, map[string]any{}} {
				in := &Input{MCP: &MCP{Arguments: replaceInnermost(v, inner)}}
				_, err := in.astValue(n)
				if wantErr := depth > maxInputDepth; (err != nil) != wantErr {
					t.Fatalf("depth %d: astValue error %v, want error %v", depth, err, wantErr)
				}
				checkMirrors(t, in, n)
			}
		}
	}
}

// replaceInnermost copies a chain of {"a": ...} objects with its innermost
// value replaced.
func replaceInnermost(v, inner any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if _, ok := m["a"].(map[string]any); !ok {
		return map[string]any{"a": inner}
	}
	return map[string]any{"a": replaceInnermost(m["a"], inner)}
}

// BenchmarkCacheKey compares the key of benchInput under the default
// policy computed through the OPA value with the key computed from the Go
// input, and under a policy that reads attributes.
func BenchmarkCacheKey(b *testing.B) {
	in := benchInput()
	for _, src := range []struct{ name, policy string }{
		{"default", DefaultBundle().Modules["authz.rego"]},
		{"envoy", envoyPolicyForTest},
	} {
		rev, err := prepare(b.Context(), Bundle{Modules: map[string]string{"p.rego": src.policy}}, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(src.name+"/via-ast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := in.astValue(rev.need)
				if err != nil {
					b.Fatal(err)
				}
				k, ok := keyOf(rev, v)
				if !ok {
					b.Fatal("no key")
				}
				k.release()
			}
		})
		b.Run(src.name+"/from-go", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k, ok := keyFromGo(rev, in, in.attributesFor(rev.need))
				if !ok {
					b.Fatal("no key")
				}
				k.release()
			}
		})
	}
}
