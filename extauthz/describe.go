package extauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/writ-dev/writ/policies"
)

// Default limits for describeHeaders and describeBody.
const (
	DefaultMaxHeaderBytes = 64 << 10 // 64 KiB
	DefaultMaxBodyBytes   = 1 << 20  // 1 MiB
)

// Context extension keys Envoy sets per route (pushed by xDS).
const (
	extResource     = "resource"
	extTenant       = "tenant"
	extSensitivity  = "sensitivity"
	extTokenProfile = "token_profile"
	extMCP          = "mcp"
)

// Header names writ reads. Envoy sends header names lower-cased.
const (
	headerAuthorization = "authorization"
	hdrContentType      = "content-type"
	hdrRequestID        = "x-request-id"
	hdrPartialBody      = "x-envoy-auth-partial-body"
	hdrMCPMethod        = "mcp-method"
	hdrMCPName          = "mcp-name"
)

// Limits bound what describeHeaders and describeBody accept.
type Limits struct {
	// MaxHeaderBytes bounds the total bytes of header names and values.
	// A request beyond it is refused with 431. Zero means 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds the body Envoy forwards. A longer body is
	// refused with 413. Zero means 1 MiB.
	MaxBodyBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return l
}

// description is everything writ knows about a request. describeHeaders
// fills it from everything but the body; describeBody, run once the caller
// is authenticated, adds what the body says.
type description struct {
	// input has AttributesFunc, ParsedPath, ParsedQuery and Resource filled
	// by describeHeaders, and ParsedBody, TruncatedBody and MCP by
	// describeBody; Identity and Approval are left to the caller.
	input *policies.Input

	// http is the CheckRequest's HTTP request; describeBody reads its body.
	http *authv3.AttributeContext_HttpRequest

	method, host, path, requestID string

	// agentEpoch is the sum of the suspension counts of the agents in the
	// call's chain (admitAgent); it keys the mint cache.
	agentEpoch int64

	// headers are the request headers, names lower-cased, repeated values
	// joined with ",". Read only: it may be the CheckRequest's own map.
	headers map[string]string

	// bearer is the token from "Authorization: Bearer ..." (scheme matched
	// case-insensitively); "" when absent. Never logged.
	bearer string
	// hasAuthorizationHeader reports an Authorization header, Bearer or not.
	hasAuthorizationHeader bool
	// spiffeID is source.principal when it is a spiffe:// ID.
	spiffeID string
	// argumentsDigest is the hex SHA-256 of the RFC 8785 canonical JSON of
	// the MCP arguments; "" when the call has no arguments.
	argumentsDigest string
	// rpcID is the JSON-RPC id of an MCP request, nil for a notification or
	// a request that is not MCP.
	rpcID json.RawMessage
	// profile is context_extensions["token_profile"].
	profile string
	// mcpRoute is context_extensions["mcp"] == "true".
	mcpRoute bool
}

// requestError is a request writ refuses before deciding: it becomes the
// HTTP answer.
type requestError struct {
	Status int // 400, 413 or 431
	// Code is the JSON-RPC error code when the request is JSON-RPC (for
	// example -32020, -32600, -32602, -32700); 0 otherwise.
	Code int
	// ID is the JSON-RPC id to echo, when known.
	ID json.RawMessage
	// Message is safe to show the agent and to log: it never echoes header
	// values or body content, only names.
	Message string
}

func (e *requestError) Error() string {
	var b strings.Builder
	b.WriteString("extauthz: request refused: ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != 0 {
		b.WriteString(" (JSON-RPC ")
		b.WriteString(strconv.Itoa(e.Code))
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// JSON-RPC error codes writ answers with.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcInvalidParams  = -32602
	// rpcHeaderMismatch is MCP's HeaderMismatch: Mcp-Method or Mcp-Name
	// disagree with the body, or cannot be decoded.
	rpcHeaderMismatch = -32020
)

// Messages of refused requests. They are fixed strings: nothing from the
// request is echoed.
const (
	msgTruncatedBody   = "request body was truncated by Envoy; raise with_request_body.max_request_bytes"
	msgInvalidPath     = "request path is not a valid URL path"
	msgParseError      = "parse error"
	msgInvalidRequest  = "invalid request"
	msgInvalidParams   = "invalid params"
	msgBatch           = "JSON-RPC batches are not supported; send one request per HTTP request"
	msgDuplicateKey    = "duplicate key in JSON-RPC request"
	msgTooDeep         = "JSON-RPC request nests too deeply"
	msgMethodMismatch  = "Mcp-Method header does not match the JSON-RPC body"
	msgNameMismatch    = "Mcp-Name header does not match the JSON-RPC body"
	msgArgumentsDigest = "invalid params: arguments cannot be canonicalized"
)

func headersTooLarge(limit int) *requestError {
	return &requestError{
		Status:  http.StatusRequestHeaderFieldsTooLarge,
		Message: "request headers exceed " + strconv.Itoa(limit) + " bytes",
	}
}

func bodyTooLarge(limit int) *requestError {
	return &requestError{
		Status:  http.StatusRequestEntityTooLarge,
		Message: "request body exceeds " + strconv.Itoa(limit) + " bytes",
	}
}

// describeHeaders turns a CheckRequest, all but its body, into what
// authentication and policy need; describeBody adds the body. Splitting the
// two lets Check refuse a caller whose credential does not verify before it
// reads a byte of the body. The error is a *requestError for a request writ
// refuses outright (the answer to send), or a plain error for a
// CheckRequest Envoy cannot have sent (no attributes, no HTTP request).
//
// The rules, in order:
//   - headers come from request.http.header_map when present (newer Envoy,
//     raw values), else request.http.headers; repeated names are joined
//     with ","; more than MaxHeaderBytes of names and values is a 431;
//   - input.attributes is the CheckRequest as opa-envoy-plugin renders it,
//     except that the values of credential headers (Authorization,
//     Proxy-Authorization, Txn-Token) are redacted to their scheme (see
//     redactCredentials): policy reads the verified input.identity instead.
//     It is rendered only if the policy reads it (input.AttributesFunc);
//   - route context comes from context_extensions (resource, tenant,
//     sensitivity, token_profile, mcp);
//   - parsed_path and parsed_query are computed as opa-envoy-plugin does; a
//     path they cannot be computed from is a 400.
func describeHeaders(req *authv3.CheckRequest, limits Limits) (*description, error) {
	attrs := req.GetAttributes()
	if attrs == nil {
		return nil, ErrNoAttributes
	}
	httpReq := attrs.GetRequest().GetHttp()
	if httpReq == nil {
		return nil, fmt.Errorf("%w: no HTTP request", ErrNoAttributes)
	}
	limits = limits.withDefaults()

	headers, size := requestHeaders(httpReq)
	if size > limits.MaxHeaderBytes {
		return nil, headersTooLarge(limits.MaxHeaderBytes)
	}

	d := &description{
		http:    httpReq,
		method:  httpReq.GetMethod(),
		host:    httpReq.GetHost(),
		path:    httpReq.GetPath(),
		headers: headers,
	}
	d.requestID = httpReq.GetId()
	if d.requestID == "" {
		d.requestID = headers[hdrRequestID]
	}
	if auth, ok := headers[headerAuthorization]; ok {
		d.hasAuthorizationHeader = true
		d.bearer = bearerToken(auth)
	}
	if p := attrs.GetSource().GetPrincipal(); strings.HasPrefix(p, "spiffe://") {
		d.spiffeID = p
	}

	ext := attrs.GetContextExtensions()
	resource := &policies.Resource{
		ID:          ext[extResource],
		Tenant:      ext[extTenant],
		Sensitivity: ext[extSensitivity],
		Extensions:  make(map[string]string, len(ext)),
	}
	for k, v := range ext {
		resource.Extensions[k] = v
	}
	d.profile = ext[extTokenProfile]
	d.mcpRoute = ext[extMCP] == "true"

	parsedPath, parsedQuery, err := parsePathAndQuery(d.path)
	if err != nil {
		return nil, &requestError{Status: http.StatusBadRequest, Message: msgInvalidPath}
	}

	d.input = &policies.Input{
		AttributesFunc: func() map[string]any { return policyAttributes(attrs) },
		ParsedPath:     parsedPath,
		ParsedQuery:    parsedQuery,
		Resource:       resource,
	}
	return d, nil
}

// policyAttributes is input.attributes: the attributes as opa-envoy-plugin
// renders them, with credential header values redacted.
func policyAttributes(a *authv3.AttributeContext) map[string]any {
	m := attributesMap(a)
	redactCredentials(m)
	return m
}

// describeBody adds what the body says to a description from
// describeHeaders. It returns a *requestError or nil.
//
// The rules, in order:
//   - the body is raw_body, else body; longer than MaxBodyBytes is a 413. It
//     is truncated when x-envoy-auth-partial-body says "true" (among any
//     repeated values) or request.http.size exceeds the bytes received. A
//     truncated body is never parsed, and an MCP request with a truncated
//     body is a 413;
//   - a JSON body (content-type application/json or +json, or any body of
//     an MCP request) becomes parsed_body; malformed JSON in an MCP request,
//     or in a JSON object body, is a 400 with JSON-RPC -32700;
//   - an MCP request (route mcp=true, an Mcp-Method or Mcp-Name header, or
//     a body, of any content type, that decodes to a JSON-RPC object or
//     batch: a "jsonrpc" member in any letter case) is parsed by parseMCP,
//     which refuses batches and miscased members;
//   - a body that starts, after a UTF-8 byte order mark, with "{" or "[" is
//     a 400 with JSON-RPC -32700: servers disagree on whether it is JSON.
func (d *description) describeBody(limits Limits) error {
	limits = limits.withDefaults()
	httpReq, headers, input := d.http, d.headers, d.input

	body := httpReq.GetRawBody()
	if len(body) == 0 && httpReq.GetBody() != "" {
		body = []byte(httpReq.GetBody())
	}
	if len(body) > limits.MaxBodyBytes {
		return bodyTooLarge(limits.MaxBodyBytes)
	}
	truncated := partialBody(headers[hdrPartialBody]) ||
		(httpReq.GetSize() > 0 && httpReq.GetSize() > int64(len(body)))

	_, hasMethodHeader := headers[hdrMCPMethod]
	_, hasNameHeader := headers[hdrMCPName]
	mcpHeaders := hasMethodHeader || hasNameHeader
	looksMCP := d.mcpRoute || mcpHeaders

	if truncated {
		if looksMCP {
			return &requestError{Status: http.StatusRequestEntityTooLarge, Message: msgTruncatedBody}
		}
		input.TruncatedBody = true
		return nil
	}

	contentJSON := isJSONContentType(headers[hdrContentType])
	lead, bom := jsonLead(body)
	structured := lead == '{' || lead == '['
	switch {
	case looksMCP:
		// Every body of an MCP request is JSON-RPC, whatever its content
		// type says; an MCP header without a body is a mismatch.
		return d.describeMCP(body, headers)
	case structured && bom:
		// Servers disagree on a byte order mark: some strip it and run the
		// call, writ's decoder refuses it. Refuse rather than guess.
		return &requestError{Status: http.StatusBadRequest, Code: rpcParseError, Message: msgParseError}
	case structured || (contentJSON && lead != 0):
		// A body that looks like a JSON object or array is decoded whatever
		// its content type: many MCP servers parse JSON without checking
		// it, so a JSON-RPC call must not hide behind text/plain.
		v, err := decodeJSON(body)
		if err != nil {
			if contentJSON && lead == '{' {
				return &requestError{Status: http.StatusBadRequest, Code: rpcParseError, Message: msgParseError}
			}
			return nil
		}
		if isJSONRPC(v) {
			// A JSON-RPC body on a route not marked MCP is still described
			// as MCP, so that tool rules apply to it; a batch is refused.
			return d.describeMCP(body, headers)
		}
		if contentJSON {
			input.ParsedBody = v
		}
	}
	return nil
}

// partialBody reads x-envoy-auth-partial-body. Envoy sets it to "true" or
// "false"; a repeated header (the agent's own copy beside Envoy's) arrives
// joined with ",", and any "true" in it means the body is partial.
func partialBody(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), "true") {
			return true
		}
	}
	return false
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// jsonLead returns the first byte of body after JSON white space, and
// whether a UTF-8 byte order mark came before it. It is 0 for a body of
// white space only.
func jsonLead(body []byte) (lead byte, bom bool) {
	b := bytes.TrimLeft(body, " \t\r\n")
	if bytes.HasPrefix(b, utf8BOM) {
		bom = true
		b = bytes.TrimLeft(b[len(utf8BOM):], " \t\r\n")
	}
	if len(b) == 0 {
		return 0, bom
	}
	return b[0], bom
}

// isJSONRPC reports a decoded body a JSON-RPC server would take as a
// request, response or batch: an object with a member whose name is
// "jsonrpc" in any letter case (servers that match member names
// case-insensitively read it), or an array holding one.
func isJSONRPC(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			if strings.EqualFold(k, "jsonrpc") {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if obj, ok := e.(map[string]any); ok && isJSONRPC(obj) {
				return true
			}
		}
	}
	return false
}

// describeMCP parses a JSON-RPC body strictly and fills the MCP facts and
// parsed_body. It returns a *requestError or nil.
func (d *description) describeMCP(body []byte, headers map[string]string) error {
	v, call, id, err := parseJSONRPC(body, headers)
	if err != nil {
		return err
	}
	d.input.ParsedBody = v
	d.input.MCP = call
	d.rpcID = id
	if call != nil && call.Arguments != nil {
		digest, err := argumentsDigest(call.Arguments)
		if err != nil {
			return &requestError{Status: http.StatusBadRequest, Code: rpcInvalidParams, ID: id, Message: msgArgumentsDigest}
		}
		d.argumentsDigest = digest
	}
	return nil
}

// requestHeaders returns the request's headers with lower-case names and
// the total bytes of names and values. header_map wins over headers when
// Envoy sends it; repeated names are joined with ",".
func requestHeaders(h *authv3.AttributeContext_HttpRequest) (map[string]string, int) {
	size := 0
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		list := hm.GetHeaders()
		out := make(map[string]string, len(list))
		var repeated map[string][]string // values of names seen more than once
		for _, hv := range list {
			name := lowerASCII(hv.GetKey())
			value := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				value = string(raw)
			}
			size += len(name) + len(value)
			if prev, ok := out[name]; ok {
				// Joined once at the end: joining as they come would copy
				// the growing value again for every repeat.
				if repeated == nil {
					repeated = make(map[string][]string)
				}
				if _, ok := repeated[name]; !ok {
					repeated[name] = []string{prev}
				}
				repeated[name] = append(repeated[name], value)
				continue
			}
			out[name] = value
		}
		for name, values := range repeated {
			out[name] = strings.Join(values, ",")
		}
		return out, size
	}
	in := h.GetHeaders()
	lower := true
	for name, value := range in {
		size += len(name) + len(value)
		if lower && lowerASCII(name) != name {
			lower = false
		}
	}
	if lower {
		// The common case: Envoy sends lower-case names. The map is shared
		// with the CheckRequest, and only ever read.
		return in, size
	}
	// Envoy never sends mixed-case names; join rather than lose one, in
	// name order so that the result does not depend on map order.
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	slices.Sort(names)
	grouped := make(map[string][]string, len(in))
	for _, name := range names {
		l := lowerASCII(name)
		grouped[l] = append(grouped[l], in[name])
	}
	out := make(map[string]string, len(grouped))
	for l, values := range grouped {
		out[l] = strings.Join(values, ",")
	}
	return out, size
}

// lowerASCII lower-cases ASCII letters, returning s itself when it has none
// to change (the common case: Envoy sends lower-case names).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN" value,
// the scheme matched case-insensitively; "" for any other scheme.
func bearerToken(v string) string {
	const scheme = "bearer"
	v = strings.TrimLeft(v, " \t")
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	rest := v[len(scheme):]
	if rest[0] != ' ' && rest[0] != '\t' {
		return ""
	}
	return strings.Trim(rest, " \t")
}

// isJSONContentType reports application/json or any +json media type.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		strings.Contains(strings.ToLower(ct), "application/json")
}

// decodeJSON decodes a whole body as JSON with numbers kept as
// json.Number, as encoding/json's Decoder with UseNumber does (a repeated
// key keeps its last value, invalid UTF-8 in a string becomes U+FFFD),
// rejecting trailing data.
func decodeJSON(body []byte) (any, error) {
	v, result := decodeJSONValue(body, jsonMaxDepth)
	if result != jsonOK && result != jsonDuplicate {
		return nil, errNotJSON
	}
	return v, nil
}

var errNotJSON = errors.New("extauthz: body is not one JSON value")

// parsePathAndQuery computes parsed_path and parsed_query as
// opa-envoy-plugin does: the path is percent-decoded, its leading slashes
// trimmed, and split on "/" (so "/" and "" give [""], "/a/" gives
// ["a", ""], and an encoded slash splits like a real one); the query is
// url.ParseQuery's result, pairs it cannot parse left out.
//
// One deliberate difference: a path beginning with "//" is a path here,
// not a URL authority, so "//admin/x" is ["admin", "x"] and not ["x"].
func parsePathAndQuery(path string) ([]string, map[string][]string, error) {
	for i := 0; i < len(path); i++ {
		if c := path[i]; c < 0x20 || c == 0x7f {
			return nil, nil, errInvalidPath
		}
	}
	var rawPath, rawQuery string
	if strings.HasPrefix(path, "/") {
		rest, _, _ := strings.Cut(path, "#")
		rawPath, rawQuery, _ = strings.Cut(rest, "?")
		p, err := url.PathUnescape(rawPath)
		if err != nil {
			return nil, nil, errInvalidPath
		}
		rawPath = p
	} else {
		u, err := url.Parse(path)
		if err != nil {
			return nil, nil, errInvalidPath
		}
		rawPath, rawQuery = u.Path, u.RawQuery
	}
	segments := strings.Split(strings.TrimLeft(rawPath, "/"), "/")
	query, _ := url.ParseQuery(rawQuery)
	if query == nil {
		query = map[string][]string{}
	}
	return segments, query, nil
}

var errInvalidPath = errors.New("extauthz: invalid request path")
