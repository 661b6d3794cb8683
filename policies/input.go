package policies

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

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

	keyUser      = ast.StringTerm("user")
	keyAgent     = ast.StringTerm("agent")
	keyTenant    = ast.StringTerm("tenant")
	keyActors    = ast.StringTerm("actors")
	keyIssuer    = ast.StringTerm("issuer")
	keyScopes    = ast.StringTerm("scopes")
	keySPIFFEID  = ast.StringTerm("spiffe_id")
	keyClaims    = ast.StringTerm("claims")
	keyDev       = ast.StringTerm("dev")
	keyMethod    = ast.StringTerm("method")
	keyName      = ast.StringTerm("name")
	keyArguments = ast.StringTerm("arguments")
	keyID        = ast.StringTerm("id")
	keySensitive = ast.StringTerm("sensitivity")
	keyStatus    = ast.StringTerm("status")
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

// astValue builds the same document as Value directly as an OPA value,
// without the intermediate maps.
func (in *Input) astValue() (ast.Value, error) {
	n := 5
	for _, set := range []bool{in.Identity != nil, in.MCP != nil, in.Resource != nil, in.Approval != nil} {
		if set {
			n++
		}
	}
	obj := ast.NewObjectWithCapacity(n)

	attrs, err := anyValue(in.Attributes, "input.attributes")
	if err != nil {
		return nil, err
	}
	obj.Insert(keyAttributes, ast.NewTerm(attrs))
	obj.Insert(keyParsedPath, ast.NewTerm(stringArray(in.ParsedPath)))
	query := ast.NewObjectWithCapacity(len(in.ParsedQuery))
	for k, vs := range in.ParsedQuery {
		query.Insert(ast.InternedTerm(k), ast.NewTerm(stringArray(vs)))
	}
	obj.Insert(keyParsedQuery, ast.NewTerm(query))
	body := ast.Value(ast.NullValue)
	if in.ParsedBody != nil {
		if body, err = anyValue(in.ParsedBody, "input.parsed_body"); err != nil {
			return nil, err
		}
	}
	obj.Insert(keyParsedBody, ast.NewTerm(body))
	obj.Insert(keyTruncatedBody, ast.InternedTerm(in.TruncatedBody))

	if id := in.Identity; id != nil {
		claims, err := anyValue(id.Claims, "input.identity.claims")
		if err != nil {
			return nil, err
		}
		o := ast.NewObjectWithCapacity(9)
		insertString(o, keyUser, id.User)
		insertString(o, keyAgent, id.Agent)
		insertString(o, keyTenant, id.Tenant)
		o.Insert(keyActors, ast.NewTerm(stringArray(id.Actors)))
		insertString(o, keyIssuer, id.Issuer)
		o.Insert(keyScopes, ast.NewTerm(stringArray(id.Scopes)))
		insertString(o, keySPIFFEID, id.SPIFFEID)
		o.Insert(keyClaims, ast.NewTerm(claims))
		o.Insert(keyDev, ast.InternedTerm(id.Dev))
		obj.Insert(keyIdentity, ast.NewTerm(o))
	}
	if c := in.MCP; c != nil {
		args, err := anyValue(c.Arguments, "input.mcp.arguments")
		if err != nil {
			return nil, err
		}
		o := ast.NewObjectWithCapacity(3)
		insertString(o, keyMethod, c.Method)
		insertString(o, keyName, c.Name)
		o.Insert(keyArguments, ast.NewTerm(args))
		obj.Insert(keyMCP, ast.NewTerm(o))
	}
	if r := in.Resource; r != nil {
		o := ast.NewObjectWithCapacity(len(r.Extensions) + 3)
		for k, v := range r.Extensions {
			switch k {
			case "id", "tenant", "sensitivity":
				if r.fieldFor(k) != "" {
					continue // the typed field wins
				}
			}
			if v != "" {
				o.Insert(ast.InternedTerm(k), ast.InternedTerm(v))
			}
		}
		insertString(o, keyID, r.ID)
		insertString(o, keyTenant, r.Tenant)
		insertString(o, keySensitive, r.Sensitivity)
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

func (r *Resource) fieldFor(k string) string {
	switch k {
	case "id":
		return r.ID
	case "tenant":
		return r.Tenant
	default:
		return r.Sensitivity
	}
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

// anyValue converts a JSON-shaped Go value; a nil map becomes {}.
func anyValue(x any, at string) (ast.Value, error) {
	switch x := x.(type) {
	case nil:
		return ast.NewObject(), nil
	case map[string]any:
		if x == nil {
			return ast.NewObject(), nil
		}
	}
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		// The conversion error can quote the value; name only the field.
		return nil, fmt.Errorf("%w: %s holds a value of type %T that is not JSON data", ErrEvaluation, at, x)
	}
	return v, nil
}
