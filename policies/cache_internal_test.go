package policies

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func mustValue(t testing.TB, doc string) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// objectInOrder builds an object inserting pairs in the given order.
func objectInOrder(pairs ...[2]*ast.Term) ast.Object {
	o := ast.NewObject()
	for _, p := range pairs {
		o.Insert(p[0], p[1])
	}
	return o
}

func canonical(t testing.TB, v ast.Value) []byte {
	t.Helper()
	b, ok := appendCanonical(nil, v, 0)
	if !ok {
		t.Fatalf("no canonical form for %v", v)
	}
	return b
}

func testRevision(generation uint64, id string) *revision {
	return &revision{id: id, generation: generation}
}

func TestCacheKeyIgnoresInsertionOrder(t *testing.T) {
	s, n := ast.StringTerm, ast.NumberTerm
	identity := func(order ...int) *ast.Term {
		pairs := [][2]*ast.Term{
			{s("user"), s("alice")}, {s("agent"), s("bot")}, {s("tenant"), s("acme")},
			{s("claims"), ast.NewTerm(objectInOrder([2]*ast.Term{s("b"), n("2")}, [2]*ast.Term{s("a"), n("1")}))},
		}
		ordered := make([][2]*ast.Term, len(order))
		for i, j := range order {
			ordered[i] = pairs[j]
		}
		return ast.NewTerm(objectInOrder(ordered...))
	}
	a := objectInOrder([2]*ast.Term{s("identity"), identity(0, 1, 2, 3)}, [2]*ast.Term{s("mcp"), ast.ObjectTerm(ast.Item(s("name"), s("x")))})
	b := objectInOrder([2]*ast.Term{s("mcp"), ast.ObjectTerm(ast.Item(s("name"), s("x")))}, [2]*ast.Term{s("identity"), identity(3, 2, 0, 1)})
	rev := testRevision(1, "sha256:0123456789abcdef")
	ka, _ := keyOf(rev, a)
	kb, _ := keyOf(rev, b)
	if ka.digest != kb.digest || !bytes.Equal(ka.canonical, kb.canonical) {
		t.Errorf("same document, different keys:\n%q\n%q", ka.canonical, kb.canonical)
	}

	// Go maps fill the input in a different order each time.
	in := &Input{Resource: &Resource{ID: "r", Extensions: map[string]string{}}, MCP: &MCP{Arguments: map[string]any{}}}
	for _, k := range strings.Fields("a b c d e f g h i j k l m n o p q r s t u v w x y z") {
		in.Resource.Extensions[k] = "v-" + k
		in.MCP.Arguments[k] = map[string]any{k: k, "z" + k: []any{k}}
	}
	first, err := in.astValue(needAll)
	if err != nil {
		t.Fatal(err)
	}
	want := canonical(t, first)
	for range 20 {
		v, err := in.astValue(needAll)
		if err != nil {
			t.Fatal(err)
		}
		if got := canonical(t, v); !bytes.Equal(got, want) {
			t.Fatalf("the same input encodes differently:\n%q\n%q", got, want)
		}
	}
}

func TestCacheKeyDistinguishesInputs(t *testing.T) {
	rev, err := prepare(t.Context(), DefaultBundle(), "")
	if err != nil {
		t.Fatal(err)
	}
	base := func() *Input {
		return &Input{
			Identity: &Identity{User: "alice", Agent: "bot", Tenant: "acme"},
			MCP:      &MCP{Method: "tools/call", Name: "search"},
			Resource: &Resource{ID: "mcp://tools", Tenant: "acme", Sensitivity: "high"},
			Approval: &Approval{ID: "ap-1", Status: "approved"},
		}
	}
	keyFor := func(in *Input) cacheKey {
		v, err := in.astValue(rev.need)
		if err != nil {
			t.Fatal(err)
		}
		k, ok := keyOf(rev, v)
		if !ok {
			t.Fatal("no key")
		}
		return k
	}
	baseKey := keyFor(base())
	// One change to each field the default policy reads.
	for name, change := range map[string]func(*Input){
		"identity.user":        func(in *Input) { in.Identity.User = "bob" },
		"identity.agent":       func(in *Input) { in.Identity.Agent = "bot2" },
		"identity.tenant":      func(in *Input) { in.Identity.Tenant = "globex" },
		"identity.tenant gone": func(in *Input) { in.Identity.Tenant = "" },
		"identity absent":      func(in *Input) { in.Identity = nil },
		"mcp.method":           func(in *Input) { in.MCP.Method = "resources/read" },
		"mcp.name":             func(in *Input) { in.MCP.Name = "searc" },
		"mcp absent":           func(in *Input) { in.MCP = nil },
		"resource.id":          func(in *Input) { in.Resource.ID = "mcp://other" },
		"resource.tenant":      func(in *Input) { in.Resource.Tenant = "acm" },
		"resource.sensitivity": func(in *Input) { in.Resource.Sensitivity = "low" },
		"resource absent":      func(in *Input) { in.Resource = nil },
		"approval.status":      func(in *Input) { in.Approval.Status = "denied" },
		"approval absent":      func(in *Input) { in.Approval = nil },
		"value moved between fields": func(in *Input) {
			in.Identity.User, in.Identity.Agent = "bot", "alice"
		},
	} {
		in := base()
		change(in)
		if k := keyFor(in); k.digest == baseKey.digest || bytes.Equal(k.canonical, baseKey.canonical) {
			t.Errorf("%s: the key did not change", name)
		}
	}
	// Changes to fields the policy cannot read keep the key.
	in := base()
	in.MCP.Arguments = map[string]any{"q": "anything"}
	in.Identity.Claims = map[string]any{"sub": "alice"}
	in.Approval.ID = "ap-2"
	in.Attributes = map[string]any{"request": map[string]any{}}
	if k := keyFor(in); k.digest != baseKey.digest {
		t.Error("a field the policy cannot read changed the key")
	}
	// The same input under another revision, or another load of the same
	// revision, has another key.
	v, _ := base().astValue(rev.need)
	for _, other := range []*revision{testRevision(rev.generation+1, rev.id), testRevision(rev.generation, "sha256:ffffffffffffffff")} {
		if k, _ := keyOf(other, v); k.digest == baseKey.digest {
			t.Errorf("revision %q generation %d shares the key", other.id, other.generation)
		}
	}
}

// TestCanonicalEncodingInjective pairs documents that a naive text form
// could confuse; each pair must encode differently. The last pair is
// rendered identically by OPA's own String(), which is why the key does
// not use it.
func TestCanonicalEncodingInjective(t *testing.T) {
	pairs := [][2]ast.Value{
		{mustValue(t, `{"a": "1"}`), mustValue(t, `{"a": 1}`)},
		{mustValue(t, `{"a": null}`), mustValue(t, `{}`)},
		{mustValue(t, `{"a": ""}`), mustValue(t, `{"a": null}`)},
		{mustValue(t, `[]`), mustValue(t, `{}`)},
		{mustValue(t, `["ab"]`), mustValue(t, `["a", "b"]`)},
		{mustValue(t, `[["a"], "b"]`), mustValue(t, `[["a", "b"]]`)},
		{mustValue(t, `{"a": {"b": "c"}}`), mustValue(t, `{"a": {"b": "c"}, "d": {}}`)},
		{mustValue(t, `{"ab": "c"}`), mustValue(t, `{"a": "bc"}`)},
		{mustValue(t, `{"a": true}`), mustValue(t, `{"a": "true"}`)},
		{mustValue(t, `{"a": false}`), mustValue(t, `{"a": true}`)},
		{mustValue(t, `{"a\"b": "c"}`), mustValue(t, `{"a": "b\"c"}`)},
		{
			ast.NewObject(ast.Item(ast.StringTerm("a"), ast.NewTerm(ast.Number(`1, "b": 2`)))),
			mustValue(t, `{"a": 1, "b": 2}`),
		},
	}
	for _, p := range pairs {
		if bytes.Equal(canonical(t, p[0]), canonical(t, p[1])) {
			t.Errorf("%v and %v encode alike", p[0], p[1])
		}
	}
	last := pairs[len(pairs)-1]
	if last[0].String() != last[1].String() {
		t.Errorf("String() tells %v and %v apart; the example no longer shows why it is not used", last[0], last[1])
	}
}

func TestCanonicalEncodingRejectsNonJSON(t *testing.T) {
	for _, v := range []ast.Value{
		ast.NewSet(ast.StringTerm("a")),
		ast.MustParseRef("data.x"),
		ast.Var("x"),
		ast.NewObject(ast.Item(ast.StringTerm("a"), ast.SetTerm())),
	} {
		if _, ok := appendCanonical(nil, v, 0); ok {
			t.Errorf("%v has a canonical form, want none", v)
		}
	}
	deep := ast.Value(ast.String("x"))
	for range maxInputDepth + 10 {
		deep = ast.NewArray(ast.NewTerm(deep))
	}
	if _, ok := appendCanonical(nil, deep, 0); ok {
		t.Error("a value nested too deeply has a canonical form")
	}
}

// FuzzCanonicalEncoding: two JSON documents share an encoding only when
// OPA sees them as the same value.
func FuzzCanonicalEncoding(f *testing.F) {
	f.Add(`{"a": 1, "b": [1, "x"]}`, `{"b": [1, "x"], "a": 1}`)
	f.Add(`{"a": "1"}`, `{"a": 1}`)
	f.Add(`[["a"], "b"]`, `[["a", "b"]]`)
	f.Add(`{"ab": "c"}`, `{"a": "bc"}`)
	f.Add(`null`, `{}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var x, y any
		dec := func(s string, v *any) bool {
			d := json.NewDecoder(strings.NewReader(s))
			d.UseNumber()
			return d.Decode(v) == nil
		}
		if !dec(a, &x) || !dec(b, &y) {
			return
		}
		va, err1 := ast.InterfaceToValue(x)
		vb, err2 := ast.InterfaceToValue(y)
		if err1 != nil || err2 != nil {
			return
		}
		ea, okA := appendCanonical(nil, va, 0)
		eb, okB := appendCanonical(nil, vb, 0)
		if !okA || !okB {
			return
		}
		if bytes.Equal(ea, eb) && va.Compare(vb) != 0 {
			t.Errorf("%v and %v encode alike", va, vb)
		}
		if va.String() == vb.String() && !bytes.Equal(ea, eb) {
			t.Errorf("%v and %v are the same document but encode differently", va, vb)
		}
	})
}

// TestCacheEntryChecked stores entries and looks them up with keys that
// share the digest but differ in revision or input, as a digest collision
// would: none may be returned.
func TestCacheEntryChecked(t *testing.T) {
	c, err := newDecisionCache(100)
	if err != nil {
		t.Fatal(err)
	}
	defer c.entries.Close()
	long := func(ch byte) []byte { return bytes.Repeat([]byte{ch}, maxStoredInput+1) }
	var digest, longDigest [32]byte
	digest[0], longDigest[0] = 1, 2
	short := cacheKey{generation: 1, digest: digest, canonical: []byte("short input")}
	longKey := cacheKey{generation: 1, digest: longDigest, canonical: long('a')}
	c.store(&short, Decision{Allow: true, Reason: "short"})
	c.store(&longKey, Decision{Allow: true, Reason: "long"})
	c.entries.Wait()

	tests := []struct {
		name string
		key  cacheKey
		want string // the reason of the decision returned; "" for a miss
	}{
		{"same short key", short, "short"},
		{"same long key", longKey, "long"},
		{"other short input", cacheKey{generation: 1, digest: digest, canonical: []byte("other input")}, ""},
		{"short input of another revision", cacheKey{generation: 2, digest: digest, canonical: []byte("short input")}, ""},
		{"other long input", cacheKey{generation: 1, digest: longDigest, canonical: long('b')}, ""},
		{"long input of another revision", cacheKey{generation: 2, digest: longDigest, canonical: long('a')}, ""},
		{"long input under a short entry", cacheKey{generation: 1, digest: digest, canonical: long('a')}, ""},
		{"digest differing past the first 128 bits", func() cacheKey {
			k := short
			k.digest[31] = 9
			return k
		}(), ""},
	}
	for _, tt := range tests {
		d, ok := c.lookup(&tt.key)
		if ok != (tt.want != "") || d.Reason != tt.want {
			t.Errorf("%s: lookup = %+v, %v; want reason %q", tt.name, d, ok, tt.want)
		}
	}
}

func TestUncacheableReason(t *testing.T) {
	tests := []struct {
		name    string
		modules map[string]string
		want    string
	}{
		{"default policy", DefaultBundle().Modules, ""},
		{"print and trace", map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": true} if { print(input.x); trace(\"t\") }"}, ""},
		{"time.now_ns", map[string]string{"p.rego": "package writ.authz\n\ndecision := {\"allow\": time.now_ns() > 0}"}, "calls time.now_ns at p.rego:3"},
		{"time.parse_ns", map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": time.parse_ns(\"2006\", \"2020\") > 0}"}, "calls time.parse_ns at p.rego:2"},
		{"io.jwt.decode_verify in an uncalled function", map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": true}\nf(t) := io.jwt.decode_verify(t, {})"}, "calls io.jwt.decode_verify at p.rego:3"},
		{"crypto.x509.parse_and_verify_certificates", map[string]string{"p.rego": "package writ.authz\ndecision := {\"allow\": true}\nv := crypto.x509.parse_and_verify_certificates(\"\")"}, "calls crypto.x509.parse_and_verify_certificates at p.rego:3"},
		{"in another module", map[string]string{
			"p.rego":   "package writ.authz\nimport data.lib\ndecision := {\"allow\": lib.n > 0}",
			"lib.rego": "package lib\nn := rand.intn(\"x\", 10)",
		}, "calls rand.intn at lib.rego:2"},
		{"substituted with with", map[string]string{"p.rego": "package writ.authz\nf(_, _) := 1\ndecision := {\"allow\": x > 0} if x := f(\"a\", 9) with f as rand.intn"}, "calls rand.intn at p.rego:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := prepare(t.Context(), Bundle{Modules: tt.modules}, "")
			if err != nil {
				t.Fatal(err)
			}
			if rev.uncacheable != tt.want {
				t.Errorf("uncacheable = %q, want %q", rev.uncacheable, tt.want)
			}
		})
	}
}

// TestBuiltinsReviewed: every builtin OPA ships is either refused by
// nondeterministicBuiltin or listed in testdata as reviewed deterministic.
func TestBuiltinsReviewed(t *testing.T) {
	src, err := os.ReadFile("testdata/deterministic_builtins.txt")
	if err != nil {
		t.Fatal(err)
	}
	reviewed := map[string]bool{}
	for line := range strings.Lines(string(src)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			reviewed[line] = true
		}
	}
	for _, b := range ast.Builtins {
		switch refused := nondeterministicBuiltin(b.Name); {
		case !refused && !reviewed[b.Name]:
			t.Errorf("builtin %s is not reviewed: add it to testdata/deterministic_builtins.txt if its result depends on its arguments alone, else to clockBuiltins", b.Name)
		case refused && reviewed[b.Name]:
			t.Errorf("testdata/deterministic_builtins.txt lists %s, which is refused", b.Name)
		}
		delete(reviewed, b.Name)
	}
	for name := range reviewed {
		t.Errorf("testdata/deterministic_builtins.txt lists %s, which OPA does not ship", name)
	}
	for _, name := range []string{"http.send", "time.now_ns", "rand.intn", "uuid.rfc4122", "opa.runtime", "net.lookup_ip_addr",
		"io.jwt.decode_verify", "time.date", "crypto.x509.parse_and_verify_certificates_with_options"} {
		if !nondeterministicBuiltin(name) {
			t.Errorf("%s is treated as deterministic", name)
		}
	}
}
