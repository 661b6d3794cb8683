package policies

import (
	"encoding/json"
	"fmt"

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
// Decide builds the same document directly as an OPA value, which is faster;
// Value is for logging, tests and tools.
func (in *Input) Value() map[string]any {
	m := make(map[string]any, 9)
	m["attributes"] = orEmptyObject(in.Attributes)
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

// inputUse records which of the input's bulky members a policy can read.
// A member no rule can reach is left out of the value Decide evaluates,
// which the policy cannot observe; the rest are converted in full. (OPA's
// lazily converted objects would be simpler, but they let
// `with input.x as y` leak outside its expression.)
type inputUse struct {
	attributes, parsedBody, claims, arguments bool
}

var allInput = inputUse{attributes: true, parsedBody: true, claims: true, arguments: true}

// Paths of the bulky input members.
var (
	pathAttributes = ast.MustParseRef("input.attributes")
	pathParsedBody = ast.MustParseRef("input.parsed_body")
	pathClaims     = ast.MustParseRef("input.identity.claims")
	pathArguments  = ast.MustParseRef("input.mcp.arguments")
)

// inputUseOf finds the input members the compiled modules can read: a
// member is needed when some reference to input may overlap it (`input`,
// `input.identity`, `input[k]` or `input.attributes.request` all reach
// input.attributes).
func inputUseOf(c *ast.Compiler) inputUse {
	var use inputUse
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r[0].Equal(ast.InputRootDocument) {
				return false
			}
			use.attributes = use.attributes || overlaps(r, pathAttributes)
			use.parsedBody = use.parsedBody || overlaps(r, pathParsedBody)
			use.claims = use.claims || overlaps(r, pathClaims)
			use.arguments = use.arguments || overlaps(r, pathArguments)
			return false
		})
	}
	return use
}

// overlaps reports whether ref may address path or something in or above it.
func overlaps(ref, path ast.Ref) bool {
	for i := 1; i < min(len(ref), len(path)); i++ {
		if ref[i].IsGround() && !ref[i].Equal(path[i]) {
			return false
		}
	}
	return true
}

// astValue builds the same document as Value directly as an OPA value,
// without the intermediate maps; it is what Decide evaluates. Members
// the policy cannot read (see inputUse) are left out.
func (in *Input) astValue(use inputUse) (ast.Value, error) {
	n := 5
	for _, set := range [...]bool{in.Identity != nil, in.MCP != nil, in.Resource != nil, in.Approval != nil} {
		if set {
			n++
		}
	}
	obj := ast.NewObjectWithCapacity(n)

	var err error
	if use.attributes {
		attrs, err := anyValue(in.Attributes, "input.attributes")
		if err != nil {
			return nil, err
		}
		obj.Insert(keyAttributes, ast.NewTerm(attrs))
	}
	obj.Insert(keyParsedPath, ast.NewTerm(stringArray(in.ParsedPath)))
	query := ast.NewObjectWithCapacity(len(in.ParsedQuery))
	for k, vs := range in.ParsedQuery {
		query.Insert(ast.InternedTerm(k), ast.NewTerm(stringArray(vs)))
	}
	obj.Insert(keyParsedQuery, ast.NewTerm(query))
	if use.parsedBody {
		body := ast.Value(ast.NullValue)
		if in.ParsedBody != nil {
			if body, err = anyValue(in.ParsedBody, "input.parsed_body"); err != nil {
				return nil, err
			}
		}
		obj.Insert(keyParsedBody, ast.NewTerm(body))
	}
	obj.Insert(keyTruncatedBody, ast.InternedTerm(in.TruncatedBody))

	if id := in.Identity; id != nil {
		o := ast.NewObjectWithCapacity(9)
		insertString(o, keyUser, id.User)
		insertString(o, keyAgent, id.Agent)
		insertString(o, keyTenant, id.Tenant)
		o.Insert(keyActors, ast.NewTerm(stringArray(id.Actors)))
		insertString(o, keyIssuer, id.Issuer)
		o.Insert(keyScopes, ast.NewTerm(stringArray(id.Scopes)))
		insertString(o, keySPIFFEID, id.SPIFFEID)
		if use.claims {
			claims, err := anyValue(id.Claims, "input.identity.claims")
			if err != nil {
				return nil, err
			}
			o.Insert(keyClaims, ast.NewTerm(claims))
		}
		o.Insert(keyDev, ast.InternedTerm(id.Dev))
		obj.Insert(keyIdentity, ast.NewTerm(o))
	}
	if c := in.MCP; c != nil {
		o := ast.NewObjectWithCapacity(3)
		insertString(o, keyMethod, c.Method)
		insertString(o, keyName, c.Name)
		if use.arguments {
			args, err := anyValue(c.Arguments, "input.mcp.arguments")
			if err != nil {
				return nil, err
			}
			o.Insert(keyArguments, ast.NewTerm(args))
		}
		obj.Insert(keyMCP, ast.NewTerm(o))
	}
	if r := in.Resource; r != nil {
		o := ast.NewObjectWithCapacity(len(r.Extensions) + 3)
		for k, v := range r.Extensions {
			if v == "" || (k == "id" && r.ID != "") || (k == "tenant" && r.Tenant != "") || (k == "sensitivity" && r.Sensitivity != "") {
				continue // empty, or the typed field wins
			}
			o.Insert(ast.InternedTerm(k), ast.InternedTerm(v))
		}
		insertString(o, keyID, r.ID)
		insertString(o, keyTenant, r.Tenant)
		insertString(o, keySensitivity, r.Sensitivity)
		obj.Insert(keyResource, ast.NewTerm(o))
	}
	if a := in.Approval; a != nil {
		o := ast.NewObjectWithCapacity(2)
		insertString(o, keyID, a.ID)
		insertString(o, keyStatus, a.Status)
		obj.Insert(keyApproval, ast.NewTerm(o))
	}
	return obj, nil
}

func insertString(o ast.Object, k *ast.Term, v string) {
	if v != "" {
		o.Insert(k, ast.InternedTerm(v))
	}
}

func stringArray(ss []string) *ast.Array {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.InternedTerm(s)
	}
	return ast.NewArray(terms...)
}

// anyValue converts a JSON-shaped Go value; a nil map becomes {}. Values
// that are not JSON data are rejected by name, never quoted.
func anyValue(x any, at string) (ast.Value, error) {
	if m, ok := x.(map[string]any); x == nil || ok && m == nil {
		return ast.NewObject(), nil
	}
	if err := checkJSON(x, at, 0); err != nil {
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
