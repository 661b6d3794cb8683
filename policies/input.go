package policies

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Value renders the input as the JSON document a policy sees as `input`:
// attributes, parsed_path, parsed_query, parsed_body and truncated_body are
// always present, as opa-envoy-plugin passes them; identity, mcp, resource
// and approval are present only when set. Empty strings are omitted; actors,
// scopes, claims and arguments are present (possibly empty) with their
// object. Every context extension appears in resource beside id, tenant and
// sensitivity, which win over an extension of the same name.
//
// Attributes come from AttributesFunc when Attributes is nil. Decide builds
// the same document directly as an OPA value, holding only what the policy
// can read, which is faster; Value is for logging, tests and tools.
func (in *Input) Value() map[string]any {
	m := make(map[string]any, 9)
	attrs := in.Attributes
	if attrs == nil && in.AttributesFunc != nil {
		attrs = in.AttributesFunc()
	}
	m["attributes"] = orEmptyObject(attrs)
	path := make([]any, len(in.ParsedPath))
	for i, s := range in.ParsedPath {
		path[i] = s
	}
	m["parsed_path"] = path
	query := make(map[string]any, len(in.ParsedQuery))
	for k, vs := range in.ParsedQuery {
		query[k] = stringsAny(vs)
	}
	m["parsed_query"] = query
	m["parsed_body"] = in.ParsedBody
	m["truncated_body"] = in.TruncatedBody

	if id := in.Identity; id != nil {
		o := map[string]any{
			"actors": stringsAny(id.Actors),
			"scopes": stringsAny(id.Scopes),
			"claims": orEmptyObject(id.Claims),
			"dev":    id.Dev,
		}
		putString(o, "user", id.User)
		putString(o, "agent", id.Agent)
		putString(o, "tenant", id.Tenant)
		putString(o, "issuer", id.Issuer)
		putString(o, "spiffe_id", id.SPIFFEID)
		m["identity"] = o
	}
	if c := in.MCP; c != nil {
		o := map[string]any{"arguments": orEmptyObject(c.Arguments)}
		putString(o, "method", c.Method)
		putString(o, "name", c.Name)
		m["mcp"] = o
	}
	if r := in.Resource; r != nil {
		o := make(map[string]any, len(r.Extensions)+3)
		for k, v := range r.Extensions {
			putString(o, k, v)
		}
		putString(o, "id", r.ID)
		putString(o, "tenant", r.Tenant)
		putString(o, "sensitivity", r.Sensitivity)
		m["resource"] = o
	}
	if a := in.Approval; a != nil {
		o := map[string]any{}
		putString(o, "id", a.ID)
		putString(o, "status", a.Status)
		m["approval"] = o
	}
	return m
}

func putString(o map[string]any, k, v string) {
	if v != "" {
		o[k] = v
	}
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func orEmptyObject(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Input keys, interned once.
var (
	keyAttributes    = ast.StringTerm("attributes")
	keyParsedPath    = ast.StringTerm("parsed_path")
	keyParsedQuery   = ast.StringTerm("parsed_query")
	keyParsedBody    = ast.StringTerm("parsed_body")
	keyTruncatedBody = ast.StringTerm("truncated_body")
	keyIdentity      = ast.StringTerm("identity")
	keyMCP           = ast.StringTerm("mcp")
	keyResource      = ast.StringTerm("resource")
	keyApproval      = ast.StringTerm("approval")
	keyUser          = ast.StringTerm("user")
	keyAgent         = ast.StringTerm("agent")
	keyTenant        = ast.StringTerm("tenant")
	keyActors        = ast.StringTerm("actors")
	keyIssuer        = ast.StringTerm("issuer")
	keyScopes        = ast.StringTerm("scopes")
	keySPIFFEID      = ast.StringTerm("spiffe_id")
	keyClaims        = ast.StringTerm("claims")
	keyDev           = ast.StringTerm("dev")
	keyMethod        = ast.StringTerm("method")
	keyName          = ast.StringTerm("name")
	keyArguments     = ast.StringTerm("arguments")
	keyID            = ast.StringTerm("id")
	keySensitivity   = ast.StringTerm("sensitivity")
	keyStatus        = ast.StringTerm("status")
)

// need is the part of an input value a policy can read: all of it, or only
// the named members. A member present with no members of its own is read
// only for whether it exists (`input.identity`, `not input.identity`): it is
// built, but nothing inside it is. The value Decide evaluates holds exactly
// what the policy can read, which the policy cannot tell apart from the
// whole input; everything else is never converted or checked. (OPA's lazily
// converted objects would be simpler, but they let `with input.x as y` leak
// outside its expression.)
type need struct {
	all     bool
	members map[string]*need
	sorted  []string // the names of members in ascending order, once sealed
}

// needAll is the need of a value read in full.
var needAll = &need{all: true}

// member returns the need of member k, nil when the policy cannot read it.
func (n *need) member(k string) *need {
	switch {
	case n == nil:
		return nil
	case n.all:
		return needAll
	default:
		return n.members[k]
	}
}

// seal records, in n and below, the member names in ascending order, so
// that keying a decision does not sort them again. n must not change
// afterwards.
func (n *need) seal() {
	if n.all || len(n.members) == 0 {
		return
	}
	n.sorted = slices.Sorted(maps.Keys(n.members))
	for _, m := range n.members {
		m.seal()
	}
}

// sortedMembers returns the names of n's members in ascending order.
func (n *need) sortedMembers() []string {
	if n.sorted != nil || len(n.members) == 0 {
		return n.sorted
	}
	return slices.Sorted(maps.Keys(n.members))
}

// capacity is how many members an object of at most full members will
// hold under n.
func (n *need) capacity(full int) int {
	if n.all {
		return full
	}
	return min(full, len(n.members))
}

// add records a read of ref, an input reference. Its path is followed while
// its terms are strings; from the first other term (a variable, a number,
// a nested reference) everything below is needed. A reference read only
// for whether it exists needs nothing below its end.
func (n *need) add(ref ast.Ref, existence bool) {
	for _, t := range ref[1:] {
		if n.all {
			return
		}
		k, ok := t.Value.(ast.String)
		if !ok {
			n.all, n.members = true, nil
			return
		}
		m := n.members[string(k)]
		if m == nil {
			m = &need{}
			if n.members == nil {
				n.members = map[string]*need{}
			}
			n.members[string(k)] = m
		}
		n = m
	}
	if !existence {
		n.all, n.members = true, nil
	}
}

// String renders the need for tests: "*" for all, else the members in order.
func (n *need) String() string {
	if n.all {
		return "*"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(n.members)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		if m := n.members[k]; m.all || len(m.members) > 0 {
			b.WriteByte(':')
			b.WriteString(m.String())
		}
	}
	b.WriteByte('}')
	return b.String()
}

// inputNeedOf finds what of input the compiled modules can read. Every
// reference to input counts, with its path up to its first non-string term
// (`input[k]` reaches all of input, `input.mcp[k]` all of input.mcp), and
// nested references count on their own. A reference that is a whole
// expression (`input.identity`, `not input.identity`) is read only for
// whether it exists: writ's input objects are never false, so what they
// hold cannot change the outcome.
func inputNeedOf(c *ast.Compiler) *need {
	root := &need{}
	var walk func(x any)
	vis := ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.Expr:
			t, ok := x.Terms.(*ast.Term)
			if !ok {
				return false
			}
			ref, ok := t.Value.(ast.Ref)
			if !ok || !ref.HasPrefix(ast.InputRootRef) {
				return false
			}
			root.add(ref, true)
			for _, t := range ref[1:] {
				walk(t)
			}
			for _, w := range x.With {
				walk(w)
			}
			return true
		case ast.Ref:
			if x.HasPrefix(ast.InputRootRef) {
				root.add(x, false)
			}
		}
		return false
	})
	walk = vis.Walk
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			walk(r)
		}
	}
	root.seal()
	return root
}

// astValue builds the document Value describes directly as an OPA value,
// without the intermediate maps, holding only what n says the policy can
// read; it is what Decide evaluates. It calls AttributesFunc when the
// policy can read input.attributes and Attributes is nil.
func (in *Input) astValue(n *need) (ast.Value, error) {
	return in.astValueWith(n, in.attributesFor(n))
}

// astValueWith is astValue with the attributes already resolved by
// attributesFor, so that a decision calls AttributesFunc at most once.
// Input.appendCanonical mirrors it: a change here must be made there too.
func (in *Input) astValueWith(n *need, attrs map[string]any) (ast.Value, error) {
	obj := ast.NewObjectWithCapacity(9)

	if m := n.member("attributes"); m != nil {
		v, err := prunedValue(attrs, m, "input.attributes", 0)
		if err != nil {
			return nil, err
		}
		obj.Insert(keyAttributes, ast.NewTerm(v))
	}
	if n.member("parsed_path") != nil {
		obj.Insert(keyParsedPath, ast.NewTerm(stringArray(in.ParsedPath)))
	}
	if m := n.member("parsed_query"); m != nil {
		query := ast.NewObjectWithCapacity(len(in.ParsedQuery))
		for k, vs := range in.ParsedQuery {
			if m.member(k) != nil {
				query.Insert(ast.InternedTerm(k), ast.NewTerm(stringArray(vs)))
			}
		}
		obj.Insert(keyParsedQuery, ast.NewTerm(query))
	}
	if m := n.member("parsed_body"); m != nil {
		body := ast.Value(ast.NullValue)
		if in.ParsedBody != nil {
			var err error
			if body, err = prunedValue(in.ParsedBody, m, "input.parsed_body", 0); err != nil {
				return nil, err
			}
		}
		obj.Insert(keyParsedBody, ast.NewTerm(body))
	}
	if n.member("truncated_body") != nil {
		obj.Insert(keyTruncatedBody, ast.InternedTerm(in.TruncatedBody))
	}

	if id, m := in.Identity, n.member("identity"); id != nil && m != nil {
		o := ast.NewObjectWithCapacity(m.capacity(9))
		insertString(o, m, keyUser, id.User)
		insertString(o, m, keyAgent, id.Agent)
		insertString(o, m, keyTenant, id.Tenant)
		insertStrings(o, m, keyActors, id.Actors)
		insertString(o, m, keyIssuer, id.Issuer)
		insertStrings(o, m, keyScopes, id.Scopes)
		insertString(o, m, keySPIFFEID, id.SPIFFEID)
		if cm := m.member("claims"); cm != nil {
			claims, err := prunedValue(id.Claims, cm, "input.identity.claims", 0)
			if err != nil {
				return nil, err
			}
			o.Insert(keyClaims, ast.NewTerm(claims))
		}
		if m.member("dev") != nil {
			o.Insert(keyDev, ast.InternedTerm(id.Dev))
		}
		obj.Insert(keyIdentity, ast.NewTerm(o))
	}
	if c, m := in.MCP, n.member("mcp"); c != nil && m != nil {
		o := ast.NewObjectWithCapacity(m.capacity(3))
		insertString(o, m, keyMethod, c.Method)
		insertString(o, m, keyName, c.Name)
		if am := m.member("arguments"); am != nil {
			args, err := prunedValue(c.Arguments, am, "input.mcp.arguments", 0)
			if err != nil {
				return nil, err
			}
			o.Insert(keyArguments, ast.NewTerm(args))
		}
		obj.Insert(keyMCP, ast.NewTerm(o))
	}
	if r, m := in.Resource, n.member("resource"); r != nil && m != nil {
		o := ast.NewObjectWithCapacity(m.capacity(len(r.Extensions) + 3))
		for k, v := range r.Extensions {
			if v == "" || (k == "id" && r.ID != "") || (k == "tenant" && r.Tenant != "") || (k == "sensitivity" && r.Sensitivity != "") {
				continue // empty, or the typed field wins
			}
			if m.member(k) != nil {
				o.Insert(ast.InternedTerm(k), ast.InternedTerm(v))
			}
		}
		insertString(o, m, keyID, r.ID)
		insertString(o, m, keyTenant, r.Tenant)
		insertString(o, m, keySensitivity, r.Sensitivity)
		obj.Insert(keyResource, ast.NewTerm(o))
	}
	if a, m := in.Approval, n.member("approval"); a != nil && m != nil {
		o := ast.NewObjectWithCapacity(m.capacity(2))
		insertString(o, m, keyID, a.ID)
		insertString(o, m, keyStatus, a.Status)
		obj.Insert(keyApproval, ast.NewTerm(o))
	}
	return obj, nil
}

// insertString sets o[k] to v when v is not empty and n can read k.
func insertString(o ast.Object, n *need, k *ast.Term, v string) {
	if v != "" && n.member(string(k.Value.(ast.String))) != nil {
		o.Insert(k, ast.InternedTerm(v))
	}
}

// insertStrings sets o[k] to the array ss when n can read k.
func insertStrings(o ast.Object, n *need, k *ast.Term, ss []string) {
	if n.member(string(k.Value.(ast.String))) != nil {
		o.Insert(k, ast.NewTerm(stringArray(ss)))
	}
}

func stringArray(ss []string) *ast.Array {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.InternedTerm(s)
	}
	return ast.NewArray(terms...)
}

// prunedValue converts the parts of a JSON-shaped Go value that n can
// read: an object keeps only the members n names, anything else is
// converted whole. A nil map becomes {}.
func prunedValue(x any, n *need, at string, depth int) (ast.Value, error) {
	if n.all {
		return anyValue(x, at, depth)
	}
	if depth > maxInputDepth {
		return nil, fmt.Errorf("%w: %s is nested more than %d levels deep", ErrEvaluation, at, maxInputDepth)
	}
	switch x := x.(type) {
	case map[string]any:
		o := ast.NewObjectWithCapacity(len(n.members))
		for k, m := range n.members {
			v, ok := x[k]
			if !ok {
				continue
			}
			pv, err := prunedValue(v, m, at, depth+1)
			if err != nil {
				return nil, err
			}
			o.Insert(ast.InternedTerm(k), ast.NewTerm(pv))
		}
		return o, nil
	case map[string]string:
		o := ast.NewObjectWithCapacity(len(n.members))
		for k := range n.members {
			if v, ok := x[k]; ok {
				o.Insert(ast.InternedTerm(k), ast.InternedTerm(v))
			}
		}
		return o, nil
	}
	return anyValue(x, at, depth)
}

// anyValue converts a JSON-shaped Go value found depth levels inside the
// member named at; the member itself, when nil, becomes {}. Values that
// are not JSON data are rejected by name, never quoted.
func anyValue(x any, at string, depth int) (ast.Value, error) {
	if m, ok := x.(map[string]any); depth == 0 && (x == nil || ok && m == nil) {
		return ast.NewObject(), nil
	}
	if err := checkJSON(x, at, depth); err != nil {
		return nil, err
	}
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %s holds a value that is not JSON data", ErrEvaluation, at)
	}
	return v, nil
}

// maxInputDepth bounds how deeply nested an input value may be.
const maxInputDepth = 64

// checkJSON walks x and rejects anything that is not JSON data, without
// converting it. The error names the field, never its value.
func checkJSON(x any, at string, depth int) error {
	if depth > maxInputDepth {
		return fmt.Errorf("%w: %s is nested more than %d levels deep", ErrEvaluation, at, maxInputDepth)
	}
	switch x := x.(type) {
	case nil, bool, string, float64, int, int64, uint64, json.Number:
		return nil
	case map[string]any:
		for _, v := range x {
			if err := checkJSON(v, at, depth+1); err != nil {
				return err
			}
		}
		return nil
	case []any:
		for _, v := range x {
			if err := checkJSON(v, at, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]string, []string:
		return nil
	default:
		return fmt.Errorf("%w: %s holds a value of type %T that is not JSON data", ErrEvaluation, at, x)
	}
}
