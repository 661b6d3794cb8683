package extauthz

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/writ-dev/writ/policies"
)

// MCP methods whose call names a target: params.name for tools and
// prompts, params.uri for resources. These are the methods for which MCP
// clients send an Mcp-Name header.
var (
	namedByName = map[string]bool{"tools/call": true, "prompts/get": true}
	namedByURI  = map[string]bool{"resources/read": true, "resources/subscribe": true, "resources/unsubscribe": true}
)

// maxRPCDepth bounds the nesting of a JSON-RPC body. MCP arguments are
// shallow documents; a deeper body is refused before it costs anything.
const maxRPCDepth = 64

// maxNameBytes bounds a call's name or uri. The name is copied into the
// evidence record, the decision's log line and, by the built-in policy, the
// writ token's scope; MCP asks tool names to stay within 128 characters.
const maxNameBytes = 2048

// The members of a JSON-RPC request object and of an MCP call's params
// that writ reads. A key that differs from one of them only by case is
// refused: a server decoding with case-insensitive field matching (Go's
// encoding/json, for one) would read a different value than writ did.
var (
	rpcMembers    = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	paramsMembers = []string{"name", "uri", "arguments"}
)

// parseMCP parses an MCP JSON-RPC body and cross-checks it against the
// Mcp-Method and Mcp-Name headers (names lower-case in headers). It
// returns the call and the JSON-RPC id (nil for a notification); a nil
// call and nil error for an empty body without MCP headers. Every error is
// a *requestError:
//
//   - malformed JSON, or a body that is not UTF-8: 400, -32700;
//   - a batch (JSON array): 400, -32600, batches are not supported (MCP
//     2025-06-18 removed them);
//   - a key repeated in the request object, in params, or anywhere in the
//     arguments, or a JSON-RPC member spelled with other letter case:
//     400, -32600 (a server might read the other copy);
//   - jsonrpc not "2.0", method missing, empty or not a string, an id that
//     is not a string, number or null: 400, -32600;
//   - tools/call and prompts/get without a string params.name, or with
//     params.arguments other than an object; resources/read, subscribe and
//     unsubscribe without a string params.uri; a name or uri longer than
//     maxNameBytes, or holding white space, control or format characters
//     (see validName): 400, -32602;
//   - an Mcp-Method header that differs from method, an Mcp-Name header
//     that differs from the name or uri (or is sent for a call that has
//     none), either header without a JSON-RPC body, or a header value that
//     cannot be decoded: 400, -32020.
//
// Header values are compared exactly, after decoding MCP's
// "=?base64?...?=" form (standard Base64 of the UTF-8 value, used by
// clients for values that cannot travel as plain ASCII); a plain value must
// be printable ASCII. There is no percent-decoding: MCP defines none.
//
// A JSON-RPC response the client returns to the server (result or error,
// an id, no method) is accepted as a call with an empty Method.
func parseMCP(body []byte, headers map[string]string) (*policies.MCP, json.RawMessage, error) {
	_, call, id, err := parseJSONRPC(body, headers)
	return call, id, err
}

// parseJSONRPC is parseMCP that also returns the decoded body, for
// parsed_body.
func parseJSONRPC(body []byte, headers map[string]string) (any, *policies.MCP, json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		if err := checkMCPHeaders(nil, false, headers, nil); err != nil {
			return nil, nil, nil, err
		}
		return nil, nil, nil, nil
	}
	v, err := decodeJSONRPC(body)
	if err != nil {
		return nil, nil, nil, err
	}
	call, id, err := mcpFromBody(v, headers)
	if err != nil {
		return nil, nil, nil, err
	}
	return v, call, id, nil
}

func rpcError(code int, id json.RawMessage, msg string) *requestError {
	return &requestError{Status: http.StatusBadRequest, Code: code, ID: id, Message: msg}
}

// decodeJSONRPC decodes a JSON-RPC body into maps, slices, strings,
// json.Number, bools and nils, refusing invalid UTF-8, trailing data,
// nesting beyond maxRPCDepth and duplicate object keys at any depth.
//
// encoding/json decodes; a scan of the (by then valid) text counts its
// object keys and nesting. Fewer map entries than keys in the text means
// two keys decoded to the same name: a duplicate, even when spelled with
// different escapes.
func decodeJSONRPC(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, rpcError(rpcParseError, nil, msgParseError)
	}
	keys, depth := scanKeys(body)
	if depth > maxRPCDepth {
		return nil, rpcError(rpcInvalidRequest, nil, msgTooDeep)
	}
	v, err := decodeJSON(body)
	if err != nil {
		return nil, rpcError(rpcParseError, nil, msgParseError)
	}
	if countKeys(v) != keys {
		return nil, rpcError(rpcInvalidRequest, nil, msgDuplicateKey)
	}
	return v, nil
}

// scanKeys counts the object keys in JSON text (a string followed by a
// colon is a key) and measures its deepest nesting. On text that is not
// valid JSON the counts mean nothing; callers decode it as well.
func scanKeys(b []byte) (keys, maxDepth int) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			j := i + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
				j++
			}
			if j < len(b) && b[j] == ':' {
				keys++
			}
		case '{', '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
		case '}', ']':
			depth--
		}
	}
	return keys, maxDepth
}

// countKeys counts the map entries in a decoded JSON value.
func countKeys(v any) int {
	switch t := v.(type) {
	case map[string]any:
		n := len(t)
		for _, e := range t {
			n += countKeys(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range t {
			n += countKeys(e)
		}
		return n
	}
	return 0
}

// checkFolded refuses a key of obj that equals one of members ignoring
// case (Unicode simple folding) without being it.
func checkFolded(obj map[string]any, members []string, id json.RawMessage) error {
	for key := range obj {
		for _, m := range members {
			if key != m && strings.EqualFold(key, m) {
				if _, exact := obj[m]; exact {
					return rpcError(rpcInvalidRequest, id, msgDuplicateKey)
				}
				return rpcError(rpcInvalidRequest, id, msgInvalidRequest)
			}
		}
	}
	return nil
}

// mcpFromBody reads the MCP call out of a decoded JSON-RPC body.
func mcpFromBody(v any, headers map[string]string) (*policies.MCP, json.RawMessage, error) {
	var obj map[string]any
	switch t := v.(type) {
	case []any:
		return nil, nil, rpcError(rpcInvalidRequest, nil, msgBatch)
	case map[string]any:
		obj = t
	default:
		return nil, nil, rpcError(rpcInvalidRequest, nil, msgInvalidRequest)
	}
	if err := checkFolded(obj, rpcMembers, nil); err != nil {
		return nil, nil, err
	}

	var id json.RawMessage
	if raw, ok := obj["id"]; ok {
		switch x := raw.(type) {
		case string:
			id, _ = json.Marshal(x) // a string always marshals
		case json.Number:
			id = json.RawMessage(x)
		case nil:
			id = json.RawMessage("null")
		default:
			return nil, nil, rpcError(rpcInvalidRequest, nil, msgInvalidRequest)
		}
	}
	if version, ok := obj["jsonrpc"].(string); !ok || version != "2.0" {
		return nil, nil, rpcError(rpcInvalidRequest, id, msgInvalidRequest)
	}

	rawMethod, hasMethod := obj["method"]
	if !hasMethod {
		_, hasResult := obj["result"]
		_, hasError := obj["error"]
		if hasResult == hasError || id == nil {
			return nil, nil, rpcError(rpcInvalidRequest, id, msgInvalidRequest)
		}
		// A response to a request the server sent.
		call := &policies.MCP{}
		if err := checkMCPHeaders(call, false, headers, id); err != nil {
			return nil, nil, err
		}
		return call, id, nil
	}
	method, ok := rawMethod.(string)
	if !ok || method == "" {
		return nil, nil, rpcError(rpcInvalidRequest, id, msgInvalidRequest)
	}
	call := &policies.MCP{Method: method}

	rawParams, hasParams := obj["params"]
	params, isObject := rawParams.(map[string]any)
	if hasParams && rawParams != nil {
		if _, isArray := rawParams.([]any); !isObject && !isArray {
			return nil, nil, rpcError(rpcInvalidParams, id, msgInvalidParams)
		}
	}
	if isObject {
		if err := checkFolded(params, paramsMembers, id); err != nil {
			return nil, nil, err
		}
	}

	hasName := false
	switch {
	case namedByName[method]:
		name, ok := params["name"].(string)
		if !isObject || !ok || !validName(name) {
			return nil, nil, rpcError(rpcInvalidParams, id, msgInvalidParams)
		}
		call.Name, hasName = name, true
		if rawArgs, ok := params["arguments"]; ok {
			args, ok := rawArgs.(map[string]any)
			if !ok {
				return nil, nil, rpcError(rpcInvalidParams, id, msgInvalidParams)
			}
			call.Arguments = args
		}
	case namedByURI[method]:
		uri, ok := params["uri"].(string)
		if !isObject || !ok || !validName(uri) {
			return nil, nil, rpcError(rpcInvalidParams, id, msgInvalidParams)
		}
		call.Name, hasName = uri, true
	}

	if err := checkMCPHeaders(call, hasName, headers, id); err != nil {
		return nil, nil, err
	}
	return call, id, nil
}

// validName reports whether a call's name or uri is one writ decides on:
// non-empty, at most maxNameBytes, and free of white space (Unicode
// White_Space and space separators), control characters and format
// characters. Policies copy the name into space-separated scope claims,
// where a space would grant a second scope, and into approval messages,
// where a bidirectional override or an invisible character would show a
// human approver another name than the one called. MCP tool names are
// letters, digits, "_", "-" and "."; a URI has no such characters either
// (RFC 3986 needs them percent-encoded).
func validName(s string) bool {
	if s == "" || len(s) > maxNameBytes {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return false
		}
		if r >= 0x80 && (unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Z)) {
			return false
		}
	}
	return true
}

// checkMCPHeaders compares the Mcp-Method and Mcp-Name headers, when
// present, with the call read from the body (nil when there is no body).
func checkMCPHeaders(call *policies.MCP, hasName bool, headers map[string]string, id json.RawMessage) error {
	if raw, ok := headers[hdrMCPMethod]; ok {
		method, err := decodeMCPHeader(raw)
		if err != nil || call == nil || method != call.Method {
			return rpcError(rpcHeaderMismatch, id, msgMethodMismatch)
		}
	}
	if raw, ok := headers[hdrMCPName]; ok {
		name, err := decodeMCPHeader(raw)
		if err != nil || call == nil || !hasName || name != call.Name {
			return rpcError(rpcHeaderMismatch, id, msgNameMismatch)
		}
	}
	return nil
}

var errMCPHeader = errors.New("extauthz: MCP header value cannot be decoded")

// decodeMCPHeader decodes an Mcp-Method or Mcp-Name value: the
// "=?base64?VALUE?=" form is standard Base64 of UTF-8; any other value must
// be printable ASCII and is taken as it is.
func decodeMCPHeader(v string) (string, error) {
	const prefix, suffix = "=?base64?", "?="
	if len(v) >= len(prefix)+len(suffix) && strings.HasPrefix(v, prefix) && strings.HasSuffix(v, suffix) {
		b, err := base64.StdEncoding.DecodeString(v[len(prefix) : len(v)-len(suffix)])
		if err != nil || !utf8.Valid(b) {
			return "", errMCPHeader
		}
		return string(b), nil
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return "", errMCPHeader
		}
	}
	return v, nil
}

// argumentsDigest is the hex SHA-256 of the RFC 8785 (JCS) canonical JSON
// of an MCP call's arguments: the same arguments give the same digest
// whatever their key order, spacing, escapes or number spelling. It is ""
// for nil arguments, and an error for a number beyond float64.
//
// The canonical text is written straight from the decoded arguments, with
// jcs.NumberToJSON formatting the numbers; tests hold it byte for byte
// equal to jcs.Transform, which costs several times more on the hot path.
func argumentsDigest(args map[string]any) (string, error) {
	if args == nil {
		return "", nil
	}
	var buf [512]byte
	canonical, err := appendCanonical(buf[:0], args)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:]), nil
}

var errNotJSONValue = errors.New("extauthz: value cannot be written as JSON")

// appendCanonical appends the RFC 8785 form of a decoded JSON value.
func appendCanonical(b []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if t {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendCanonicalString(b, t), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, err
		}
		return appendCanonicalNumber(b, f)
	case float64:
		return appendCanonicalNumber(b, t)
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonical(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, t[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, errNotJSONValue
}

func appendCanonicalNumber(b []byte, f float64) ([]byte, error) {
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return nil, err
	}
	return append(b, s...), nil
}

// appendCanonicalString writes a JSON string as RFC 8785 does: only '"',
// '\\' and control characters escaped, the short forms where JSON has
// them, everything else as UTF-8.
func appendCanonicalString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785
// sorts object keys. It differs from byte order only where a character
// beyond U+FFFF (a surrogate pair) meets one in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if la, lb := utf16Lead(ra), utf16Lead(rb); la != lb {
				return int(la) - int(lb)
			}
			return int(ra) - int(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16Lead is the first UTF-16 code unit of r. Two different runes with
// the same lead unit are both beyond U+FFFF, where code-point order and
// UTF-16 order agree, so comparing the rune itself then decides.
func utf16Lead(r rune) rune {
	if r >= 0x10000 {
		return 0xd800 + (r-0x10000)>>10
	}
	return r
}
