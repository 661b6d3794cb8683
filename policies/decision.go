package policies

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Reasons for decisions the engine makes itself.
const (
	reasonUndefined  = "policy returned no decision"
	reasonEnvoyAllow = "allowed by data.envoy.authz.allow"
	reasonEnvoyDeny  = "denied by data.envoy.authz.allow"
	profileAccess    = "access_token"
	profileTxn       = "txn_token"
)

// typeError reports a field of the wrong type at an exact path.
func typeError(at, want string, got ast.Value) error {
	return fmt.Errorf("%w: %s: want %s, got %s", ErrDecisionType, at, want, valueTypeName(got))
}

func valueTypeName(v ast.Value) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case ast.String:
		return "string"
	case ast.Boolean:
		return "boolean"
	case ast.Number:
		return "number"
	case ast.Null:
		return "null"
	case ast.Object:
		return "object"
	case *ast.Array:
		return "array"
	case ast.Set:
		return "set"
	default:
		return ast.ValueName(v)
	}
}

// decisionKeys are the keys of the decision documents as terms, made once
// so that reading a decision allocates none.
var decisionKeys = func() map[string]*ast.Term {
	keys := map[string]*ast.Term{}
	for _, k := range []string{
		"allow", "reason", "scopes", "audience", "ttl", "profile", "approval", "required",
		"binding_message", "approvers", "credential", "backend", "ref", "header", "format",
		"headers", "response_headers", "remove_headers", "http_status", "body", "dynamic_metadata",
		"allowed", "response_headers_to_add", "request_headers_to_remove", "uses", "window",
	} {
		keys[k] = ast.StringTerm(k)
	}
	return keys
}()

// field returns obj[key] or nil.
func field(obj ast.Object, key string) ast.Value {
	k := decisionKeys[key]
	if k == nil {
		k = ast.StringTerm(key)
	}
	t := obj.Get(k)
	if t == nil {
		return nil
	}
	return t.Value
}

// writDecision converts the document at data.writ.authz.decision.
func writDecision(v ast.Value) (Decision, error) {
	const at = "decision"
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, typeError(at, "object", v)
	}
	var d Decision
	allow := field(obj, "allow")
	if allow == nil {
		return Decision{}, fmt.Errorf("%w: %s.allow: missing, want boolean", ErrDecisionType, at)
	}
	b, ok := allow.(ast.Boolean)
	if !ok {
		return Decision{}, typeError(at+".allow", "boolean", allow)
	}
	d.Allow = bool(b)

	var err error
	if d.Reason, err = optString(obj, at, "reason"); err != nil {
		return Decision{}, err
	}
	if d.Scopes, err = optStrings(obj, at, "scopes"); err != nil {
		return Decision{}, err
	}
	if d.Audience, err = optString(obj, at, "audience"); err != nil {
		return Decision{}, err
	}
	if d.TTL, err = optDuration(obj, at, "ttl"); err != nil {
		return Decision{}, err
	}
	if d.Profile, err = optString(obj, at, "profile"); err != nil {
		return Decision{}, err
	}
	if d.Profile != "" && d.Profile != profileAccess && d.Profile != profileTxn {
		return Decision{}, fmt.Errorf("%w: %s.profile: want %q or %q", ErrDecisionType, at, profileAccess, profileTxn)
	}
	if d.Approval, err = approvalRequirement(obj, at); err != nil {
		return Decision{}, err
	}
	if d.Credential, err = credentialRef(obj, at); err != nil {
		return Decision{}, err
	}
	if d.Headers, err = optStringMap(obj, at, "headers"); err != nil {
		return Decision{}, err
	}
	if d.ResponseHeaders, err = optStringMap(obj, at, "response_headers"); err != nil {
		return Decision{}, err
	}
	if d.RemoveHeaders, err = optStrings(obj, at, "remove_headers"); err != nil {
		return Decision{}, err
	}
	if d.HTTPStatus, err = optHTTPStatus(obj, at); err != nil {
		return Decision{}, err
	}
	if d.Body, err = optString(obj, at, "body"); err != nil {
		return Decision{}, err
	}
	if d.DynamicMetadata, err = optObject(obj, at, "dynamic_metadata"); err != nil {
		return Decision{}, err
	}
	return d, nil
}

func approvalRequirement(obj ast.Object, at string) (*ApprovalRequirement, error) {
	v := field(obj, "approval")
	if v == nil {
		return nil, nil
	}
	at += ".approval"
	o, ok := v.(ast.Object)
	if !ok {
		return nil, typeError(at, "object", v)
	}
	var a ApprovalRequirement
	if r := field(o, "required"); r != nil {
		b, ok := r.(ast.Boolean)
		if !ok {
			return nil, typeError(at+".required", "boolean", r)
		}
		a.Required = bool(b)
	}
	var err error
	if a.BindingMessage, err = optString(o, at, "binding_message"); err != nil {
		return nil, err
	}
	if a.Approvers, err = optStrings(o, at, "approvers"); err != nil {
		return nil, err
	}
	if a.TTL, err = optDuration(o, at, "ttl"); err != nil {
		return nil, err
	}
	if a.Window, err = optDuration(o, at, "window"); err != nil {
		return nil, err
	}
	if v := field(o, "uses"); v != nil {
		n, ok := v.(ast.Number)
		if !ok {
			return nil, typeError(at+".uses", "integer", v)
		}
		uses, ok := n.Int()
		if !ok || uses < -1 || uses == 0 || uses > 1_000_000 {
			return nil, fmt.Errorf("%w: %s.uses: want a whole number of uses from 1 to 1000000, or -1 (unlimited, with a window)", ErrDecisionType, at)
		}
		a.Uses = uses
	}
	return &a, nil
}

func credentialRef(obj ast.Object, at string) (*CredentialRef, error) {
	v := field(obj, "credential")
	if v == nil {
		return nil, nil
	}
	at += ".credential"
	o, ok := v.(ast.Object)
	if !ok {
		return nil, typeError(at, "object", v)
	}
	var c CredentialRef
	var err error
	if c.Backend, err = optString(o, at, "backend"); err != nil {
		return nil, err
	}
	if c.Ref, err = optString(o, at, "ref"); err != nil {
		return nil, err
	}
	if c.Header, err = optString(o, at, "header"); err != nil {
		return nil, err
	}
	if c.Format, err = optString(o, at, "format"); err != nil {
		return nil, err
	}
	return &c, nil
}

func optString(obj ast.Object, at, key string) (string, error) {
	v := field(obj, key)
	if v == nil {
		return "", nil
	}
	s, ok := v.(ast.String)
	if !ok {
		return "", typeError(at+"."+key, "string", v)
	}
	return string(s), nil
}

// optStrings reads an array (or a set, which is how a Rego partial set
// rule arrives) of strings.
func optStrings(obj ast.Object, at, key string) ([]string, error) {
	v := field(obj, key)
	if v == nil {
		return nil, nil
	}
	return stringList(v, at+"."+key)
}

func stringList(v ast.Value, at string) ([]string, error) {
	var elems []*ast.Term
	switch x := v.(type) {
	case *ast.Array:
		elems = make([]*ast.Term, x.Len())
		for i := range elems {
			elems[i] = x.Elem(i)
		}
	case ast.Set:
		sorted := x.Sorted()
		elems = make([]*ast.Term, sorted.Len())
		for i := range elems {
			elems[i] = sorted.Elem(i)
		}
	default:
		return nil, typeError(at, "array of strings", v)
	}
	out := make([]string, len(elems))
	for i, t := range elems {
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil, typeError(at+"["+strconv.Itoa(i)+"]", "string", t.Value)
		}
		out[i] = string(s)
	}
	return out, nil
}

func optStringMap(obj ast.Object, at, key string) (map[string]string, error) {
	v := field(obj, key)
	if v == nil {
		return nil, nil
	}
	at += "." + key
	o, ok := v.(ast.Object)
	if !ok {
		return nil, typeError(at, "object of strings", v)
	}
	out := make(map[string]string, o.Len())
	var err error
	o.Until(func(k, val *ast.Term) bool {
		ks, ok := k.Value.(ast.String)
		if !ok {
			err = typeError(at+" key", "string", k.Value)
			return true
		}
		s, ok := val.Value.(ast.String)
		if !ok {
			err = typeError(at+"["+strconv.Quote(string(ks))+"]", "string", val.Value)
			return true
		}
		out[string(ks)] = string(s)
		return false
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// optDuration reads a Go duration string ("60s", "10m") or a number of
// seconds.
func optDuration(obj ast.Object, at, key string) (time.Duration, error) {
	v := field(obj, key)
	if v == nil {
		return 0, nil
	}
	at += "." + key
	var d time.Duration
	switch x := v.(type) {
	case ast.String:
		var err error
		d, err = time.ParseDuration(string(x))
		if err != nil {
			return 0, fmt.Errorf("%w: %s: want a duration such as \"60s\" or a number of seconds, got a string that is not a duration", ErrDecisionType, at)
		}
	case ast.Number:
		f, ok := x.Float64()
		if !ok || math.IsInf(f, 0) || math.IsNaN(f) || f > float64(math.MaxInt64)/float64(time.Second) {
			return 0, fmt.Errorf("%w: %s: want a number of seconds, got a number out of range", ErrDecisionType, at)
		}
		d = time.Duration(f * float64(time.Second))
	default:
		return 0, typeError(at, "duration string or number of seconds", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: %s: want a duration of zero or more, got a negative duration", ErrDecisionType, at)
	}
	return d, nil
}

func optHTTPStatus(obj ast.Object, at string) (int, error) {
	v := field(obj, "http_status")
	if v == nil {
		return 0, nil
	}
	at += ".http_status"
	n, ok := v.(ast.Number)
	if !ok {
		return 0, typeError(at, "integer", v)
	}
	code, ok := n.Int()
	if !ok {
		return 0, fmt.Errorf("%w: %s: want integer, got a number with a fraction", ErrDecisionType, at)
	}
	if code < 100 || code > 599 {
		return 0, fmt.Errorf("%w: %s: want an HTTP status code from 100 to 599, got %d", ErrDecisionType, at, code)
	}
	return code, nil
}

func optObject(obj ast.Object, at, key string) (map[string]any, error) {
	v := field(obj, key)
	if v == nil {
		return nil, nil
	}
	if _, ok := v.(ast.Object); !ok {
		return nil, typeError(at+"."+key, "object", v)
	}
	x, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s: not JSON data", ErrDecisionType, at, key)
	}
	return x.(map[string]any), nil
}

// envoyDecision translates opa-envoy-plugin's data.envoy.authz.allow: a
// boolean, or an object with allowed (required), headers,
// response_headers_to_add, request_headers_to_remove, body, http_status and
// dynamic_metadata. Header sets are objects or arrays of objects, and each
// value is a string or an array of strings, as opa-envoy-plugin accepts;
// several values for one header are joined with ", ".
//
// opa-envoy-plugin sends `headers` upstream when it allows and to the
// client when it denies, so on a denial they become ResponseHeaders.
func envoyDecision(v ast.Value) (Decision, error) {
	const at = "envoy.authz.allow"
	switch x := v.(type) {
	case ast.Boolean:
		if x {
			return Decision{Allow: true, Reason: reasonEnvoyAllow}, nil
		}
		return Decision{Allow: false, Reason: reasonEnvoyDeny}, nil
	case ast.Object:
		allowed := field(x, "allowed")
		if allowed == nil {
			return Decision{}, fmt.Errorf("%w: %s.allowed: missing, want boolean", ErrDecisionType, at)
		}
		b, ok := allowed.(ast.Boolean)
		if !ok {
			return Decision{}, typeError(at+".allowed", "boolean", allowed)
		}
		d := Decision{Allow: bool(b), Reason: reasonEnvoyDeny}
		if d.Allow {
			d.Reason = reasonEnvoyAllow
		}
		headers, err := envoyHeaders(x, at, "headers")
		if err != nil {
			return Decision{}, err
		}
		respHeaders, err := envoyHeaders(x, at, "response_headers_to_add")
		if err != nil {
			return Decision{}, err
		}
		if d.Allow {
			d.Headers = headers
			d.ResponseHeaders = respHeaders
		} else {
			d.ResponseHeaders = mergeHeaders(respHeaders, headers)
		}
		if d.RemoveHeaders, err = optStrings(x, at, "request_headers_to_remove"); err != nil {
			return Decision{}, err
		}
		if d.Body, err = optString(x, at, "body"); err != nil {
			return Decision{}, err
		}
		if d.HTTPStatus, err = optHTTPStatus(x, at); err != nil {
			return Decision{}, err
		}
		if d.DynamicMetadata, err = optObject(x, at, "dynamic_metadata"); err != nil {
			return Decision{}, err
		}
		return d, nil
	default:
		return Decision{}, typeError(at, "boolean or object", v)
	}
}

// envoyHeaders reads an object of headers or an array of such objects.
func envoyHeaders(obj ast.Object, at, key string) (map[string]string, error) {
	v := field(obj, key)
	if v == nil {
		return nil, nil
	}
	at += "." + key
	out := map[string]string{}
	switch x := v.(type) {
	case ast.Object:
		if err := addEnvoyHeaders(out, x, at); err != nil {
			return nil, err
		}
	case *ast.Array:
		for i := range x.Len() {
			elem := x.Elem(i).Value
			o, ok := elem.(ast.Object)
			elemAt := at + "[" + strconv.Itoa(i) + "]"
			if !ok {
				return nil, typeError(elemAt, "object", elem)
			}
			if err := addEnvoyHeaders(out, o, elemAt); err != nil {
				return nil, err
			}
		}
	default:
		return nil, typeError(at, "object or array of objects", v)
	}
	return out, nil
}

func addEnvoyHeaders(out map[string]string, o ast.Object, at string) error {
	var err error
	o.Until(func(k, val *ast.Term) bool {
		ks, ok := k.Value.(ast.String)
		if !ok {
			err = typeError(at+" key", "string", k.Value)
			return true
		}
		name := string(ks)
		hAt := at + "[" + strconv.Quote(name) + "]"
		switch x := val.Value.(type) {
		case ast.String:
			addHeader(out, name, string(x))
		case *ast.Array, ast.Set:
			var vals []string
			if vals, err = stringList(x, hAt); err != nil {
				return true
			}
			for _, s := range vals {
				addHeader(out, name, s)
			}
		default:
			err = typeError(hAt, "string or array of strings", val.Value)
			return true
		}
		return false
	})
	return err
}

func addHeader(out map[string]string, name, value string) {
	if old, ok := out[name]; ok {
		out[name] = old + ", " + value
		return
	}
	out[name] = value
}

func mergeHeaders(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]string, len(b))
	}
	for k, v := range b {
		addHeader(a, k, v)
	}
	return a
}
