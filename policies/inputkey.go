package policies

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Cache keys straight from the Go input.
//
// On a cache hit the OPA value of the input is never evaluated, so
// building it only to encode it is wasted work. keyFromGo walks the Go
// input along the same pruned paths astValue takes and writes, byte for
// byte, what appendCanonical writes for the value astValue would build:
//
//	in.appendCanonical(b, n, attrs) == appendCanonical(b, in.astValueWith(n, attrs))
//
// whenever astValueWith succeeds, and it fails exactly when astValueWith
// fails (Decide then takes the slow way and returns the conversion's
// error). Keep the two in step: a change to one is a change to both.
// Every member, presence rule and conversion is mirrored: a member is
// written exactly when astValue inserts it (empty strings left out,
// typed fields over extensions of the same name, a nil body as null, a
// nil object at a member's top as {}), numbers are written as the text
// ast.InterfaceToValue gives them (json.Number as spelled, float64 as
// strconv 'g' -1, int, int64 and uint64 as int), and nesting is limited
// as checkJSON limits it.
//
// Why a hit is then correct: the value a policy evaluates is a
// deterministic function of the revision's need, the pruned Go input and
// the attributes (resolved once per Decide, AttributesFunc called at most
// once and only when the revision can read input.attributes). Equal keys
// mean equal canonical encodings; the canonical encoding is injective over
// JSON values (every value tagged and length-prefixed, object keys
// sorted), so equal keys mean equal OPA inputs, hence equal decisions.
// Conversely, inputs whose OPA values are the same document with the same
// number spellings share a key, as they did when the key was computed from
// the OPA value, so hit rates are unchanged. The property and fuzz tests
// check the equality above on random inputs and needs.

// keyFromGo computes the key of in under rev as keyOf(rev, astValue)
// would, without building the OPA value. attrs is in's attributes as
// resolved for this decision (see attributesFor). It is false exactly
// when the input cannot be converted; the caller then builds the OPA
// value to report why.
func keyFromGo(rev *revision, in *Input, attrs map[string]any) (cacheKey, bool) {
	buf, b, prefix := startKey(rev)
	b, ok := in.appendCanonical(b, rev.need, attrs)
	return finishKey(rev, buf, b, prefix, ok)
}

// attributesFor is the attributes the value under n holds: Attributes, or
// AttributesFunc's result when Attributes is nil and n can read them.
// Call it once per decision.
func (in *Input) attributesFor(n *need) map[string]any {
	if in.Attributes == nil && in.AttributesFunc != nil && n.member("attributes") != nil {
		return in.AttributesFunc()
	}
	return in.Attributes
}

// appendCanonical appends the canonical encoding of astValueWith(n, attrs).
// Members are written in ascending key order; see the comment above.
func (in *Input) appendCanonical(b []byte, n *need, attrs map[string]any) ([]byte, bool) {
	am := n.member("attributes")
	idm := n.member("identity")
	mm := n.member("mcp")
	bm := n.member("parsed_body")
	pm := n.member("parsed_path")
	qm := n.member("parsed_query")
	rm := n.member("resource")
	tm := n.member("truncated_body")
	approval := in.Approval != nil && n.member("approval") != nil
	identity := in.Identity != nil && idm != nil
	mcp := in.MCP != nil && mm != nil
	resource := in.Resource != nil && rm != nil
	b = appendObjectHeader(b, count(approval, am != nil, identity, mcp, bm != nil, pm != nil, qm != nil, resource, tm != nil))

	ok := true
	if approval {
		b = appendCanonicalString(b, "approval")
		b = appendApproval(b, in.Approval, n.member("approval"))
	}
	if am != nil {
		b = appendCanonicalString(b, "attributes")
		if b, ok = appendPruned(b, attrs, am, 0); !ok {
			return b, false
		}
	}
	if identity {
		b = appendCanonicalString(b, "identity")
		if b, ok = appendIdentity(b, in.Identity, idm); !ok {
			return b, false
		}
	}
	if mcp {
		b = appendCanonicalString(b, "mcp")
		if b, ok = appendMCP(b, in.MCP, mm); !ok {
			return b, false
		}
	}
	if bm != nil {
		b = appendCanonicalString(b, "parsed_body")
		if in.ParsedBody == nil {
			b = append(b, tagNull)
		} else if b, ok = appendPruned(b, in.ParsedBody, bm, 0); !ok {
			return b, false
		}
	}
	if pm != nil {
		b = appendCanonicalString(b, "parsed_path")
		b = appendStringArray(b, in.ParsedPath)
	}
	if qm != nil {
		b = appendCanonicalString(b, "parsed_query")
		b = appendQuery(b, in.ParsedQuery, qm)
	}
	if resource {
		b = appendCanonicalString(b, "resource")
		b = appendResource(b, in.Resource, rm)
	}
	if tm != nil {
		b = appendCanonicalString(b, "truncated_body")
		b = appendBool(b, in.TruncatedBody)
	}
	return b, true
}

func appendApproval(b []byte, a *Approval, m *need) []byte {
	id, status := a.ID != "" && m.member("id") != nil, a.Status != "" && m.member("status") != nil
	b = appendObjectHeader(b, count(id, status))
	if id {
		b = appendStringMember(b, "id", a.ID)
	}
	if status {
		b = appendStringMember(b, "status", a.Status)
	}
	return b
}

func appendIdentity(b []byte, id *Identity, m *need) ([]byte, bool) {
	str := func(k, v string) bool { return v != "" && m.member(k) != nil }
	actors, agent, claims := m.member("actors") != nil, str("agent", id.Agent), m.member("claims")
	dev, issuer, scopes := m.member("dev") != nil, str("issuer", id.Issuer), m.member("scopes") != nil
	spiffe, tenant, user := str("spiffe_id", id.SPIFFEID), str("tenant", id.Tenant), str("user", id.User)
	b = appendObjectHeader(b, count(actors, agent, claims != nil, dev, issuer, scopes, spiffe, tenant, user))
	if actors {
		b = appendCanonicalString(b, "actors")
		b = appendStringArray(b, id.Actors)
	}
	if agent {
		b = appendStringMember(b, "agent", id.Agent)
	}
	if claims != nil {
		b = appendCanonicalString(b, "claims")
		var ok bool
		if b, ok = appendPruned(b, id.Claims, claims, 0); !ok {
			return b, false
		}
	}
	if dev {
		b = appendCanonicalString(b, "dev")
		b = appendBool(b, id.Dev)
	}
	if issuer {
		b = appendStringMember(b, "issuer", id.Issuer)
	}
	if scopes {
		b = appendCanonicalString(b, "scopes")
		b = appendStringArray(b, id.Scopes)
	}
	if spiffe {
		b = appendStringMember(b, "spiffe_id", id.SPIFFEID)
	}
	if tenant {
		b = appendStringMember(b, "tenant", id.Tenant)
	}
	if user {
		b = appendStringMember(b, "user", id.User)
	}
	return b, true
}

func appendMCP(b []byte, c *MCP, m *need) ([]byte, bool) {
	args := m.member("arguments")
	method, name := c.Method != "" && m.member("method") != nil, c.Name != "" && m.member("name") != nil
	b = appendObjectHeader(b, count(args != nil, method, name))
	if args != nil {
		b = appendCanonicalString(b, "arguments")
		var ok bool
		if b, ok = appendPruned(b, c.Arguments, args, 0); !ok {
			return b, false
		}
	}
	if method {
		b = appendStringMember(b, "method", c.Method)
	}
	if name {
		b = appendStringMember(b, "name", c.Name)
	}
	return b, true
}

// keyValue is one string member of an object.
type keyValue struct{ k, v string }

func compareKeys(x, y keyValue) int { return strings.Compare(x.k, y.k) }

// appendResource writes the extensions and the typed fields as astValue
// merges them: an empty value is left out, and a typed field that is set
// replaces the extension of the same name.
func appendResource(b []byte, r *Resource, m *need) []byte {
	var arr [8]keyValue
	kvs := arr[:0]
	for k, v := range r.Extensions {
		if v == "" || (k == "id" && r.ID != "") || (k == "tenant" && r.Tenant != "") || (k == "sensitivity" && r.Sensitivity != "") {
			continue
		}
		if m.member(k) != nil {
			kvs = append(kvs, keyValue{k, v})
		}
	}
	for _, kv := range [...]keyValue{{"id", r.ID}, {"tenant", r.Tenant}, {"sensitivity", r.Sensitivity}} {
		if kv.v != "" && m.member(kv.k) != nil {
			kvs = append(kvs, kv)
		}
	}
	slices.SortFunc(kvs, compareKeys)
	b = appendObjectHeader(b, len(kvs))
	for _, kv := range kvs {
		b = appendStringMember(b, kv.k, kv.v)
	}
	return b
}

func appendQuery(b []byte, q map[string][]string, m *need) []byte {
	var arr [8]string
	keys := arr[:0]
	for k := range q {
		if m.member(k) != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b = appendObjectHeader(b, len(keys))
	for _, k := range keys {
		b = appendCanonicalString(b, k)
		b = appendStringArray(b, q[k])
	}
	return b
}

// appendPruned mirrors prunedValue.
func appendPruned(b []byte, x any, n *need, depth int) ([]byte, bool) {
	if n.all {
		return appendAny(b, x, depth)
	}
	if depth > maxInputDepth {
		return b, false
	}
	switch x := x.(type) {
	case map[string]any:
		names := n.sortedMembers()
		c := 0
		for _, k := range names {
			if _, ok := x[k]; ok {
				c++
			}
		}
		b = appendObjectHeader(b, c)
		for _, k := range names {
			v, ok := x[k]
			if !ok {
				continue
			}
			b = appendCanonicalString(b, k)
			if b, ok = appendPruned(b, v, n.members[k], depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case map[string]string:
		names := n.sortedMembers()
		c := 0
		for _, k := range names {
			if _, ok := x[k]; ok {
				c++
			}
		}
		b = appendObjectHeader(b, c)
		for _, k := range names {
			if v, ok := x[k]; ok {
				b = appendStringMember(b, k, v)
			}
		}
		return b, true
	}
	return appendAny(b, x, depth)
}

// appendAny mirrors anyValue: the member itself, when nil, is {}.
func appendAny(b []byte, x any, depth int) ([]byte, bool) {
	if m, ok := x.(map[string]any); depth == 0 && (x == nil || ok && m == nil) {
		return appendObjectHeader(b, 0), true
	}
	return appendJSON(b, x, depth)
}

// appendJSON mirrors checkJSON followed by ast.InterfaceToValue.
func appendJSON(b []byte, x any, depth int) ([]byte, bool) {
	if depth > maxInputDepth {
		return b, false
	}
	switch x := x.(type) {
	case nil:
		return append(b, tagNull), true
	case bool:
		return appendBool(b, x), true
	case string:
		return appendCanonicalString(b, x), true
	case float64:
		var tmp [32]byte
		return appendNumber(b, strconv.AppendFloat(tmp[:0], x, 'g', -1, 64)), true
	case int:
		var tmp [24]byte
		return appendNumber(b, strconv.AppendInt(tmp[:0], int64(x), 10)), true
	case int64:
		var tmp [24]byte
		return appendNumber(b, strconv.AppendInt(tmp[:0], int64(int(x)), 10)), true
	case uint64:
		// OPA converts a uint64 as an int, so one above MaxInt64 wraps.
		var tmp [24]byte
		return appendNumber(b, strconv.AppendInt(tmp[:0], int64(int(x)), 10)), true
	case json.Number:
		if _, err := ast.NumberChecked(string(x)); err != nil {
			return b, false
		}
		b = append(b, tagNumber)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...), true
	case []any:
		b = append(b, tagArray)
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			var ok bool
			if b, ok = appendJSON(b, e, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case []string:
		return appendStringArray(b, x), true
	case map[string]any:
		var arr [16]string
		keys := arr[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = appendObjectHeader(b, len(keys))
		for _, k := range keys {
			b = appendCanonicalString(b, k)
			var ok bool
			if b, ok = appendJSON(b, x[k], depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case map[string]string:
		var arr [16]string
		keys := arr[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = appendObjectHeader(b, len(keys))
		for _, k := range keys {
			b = appendStringMember(b, k, x[k])
		}
		return b, true
	}
	return b, false
}

func appendObjectHeader(b []byte, n int) []byte {
	b = append(b, tagObject)
	return binary.AppendUvarint(b, uint64(n))
}

func appendStringMember(b []byte, k, v string) []byte {
	return appendCanonicalString(appendCanonicalString(b, k), v)
}

func appendStringArray(b []byte, ss []string) []byte {
	b = append(b, tagArray)
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendCanonicalString(b, s)
	}
	return b
}

func appendNumber(b, text []byte) []byte {
	b = append(b, tagNumber)
	b = binary.AppendUvarint(b, uint64(len(text)))
	return append(b, text...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, tagTrue)
	}
	return append(b, tagFalse)
}

func count(present ...bool) int {
	c := 0
	for _, p := range present {
		if p {
			c++
		}
	}
	return c
}
