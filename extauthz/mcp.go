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
	"sync"
	"unicode"
	"unicode/utf16"
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
// Wherever each occurs in the text, invalid UTF-8 (-32700) is refused
// before nesting (-32600), nesting before malformed JSON (-32700), and
// malformed JSON before a duplicate key (-32600). A duplicate is a key
// that decodes to the same name as another of its object, even when
// spelled with other escapes.
func decodeJSONRPC(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, rpcError(rpcParseError, nil, msgParseError)
	}
	v, result := decodeJSONValue(body, maxRPCDepth)
	switch result {
	case jsonTooDeep:
		return nil, rpcError(rpcInvalidRequest, nil, msgTooDeep)
	case jsonMalformed:
		// The text nests too deeply further on than the decoder read.
		if nestingDepth(body) > maxRPCDepth {
			return nil, rpcError(rpcInvalidRequest, nil, msgTooDeep)
		}
		return nil, rpcError(rpcParseError, nil, msgParseError)
	case jsonDuplicate:
		return nil, rpcError(rpcInvalidRequest, nil, msgDuplicateKey)
	}
	return v, nil
}

// nestingDepth measures the deepest nesting of brackets in JSON text,
// skipping strings. On text that is not JSON it still counts, so that
// deep nesting is refused as such wherever the text breaks.
func nestingDepth(b []byte) int {
	depth, maxDepth := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case '}', ']':
			depth--
		}
	}
	return maxDepth
}

// jsonMaxDepth is encoding/json's bound on nesting.
const jsonMaxDepth = 10000

// jsonResult is how decodeJSONValue went.
type jsonResult uint8

const (
	jsonOK jsonResult = iota
	// jsonDuplicate: the text is JSON, and an object in it repeats a key
	// (the value holds the last one, as encoding/json keeps).
	jsonDuplicate
	jsonMalformed
	// jsonTooDeep: decoding stopped at nesting beyond the bound.
	jsonTooDeep
)

// decodeJSONValue decodes JSON text, with nothing but white space after
// the value, into exactly what encoding/json's Decoder, with UseNumber,
// gives an any: map[string]any, []any (never nil), string, json.Number
// holding the number as written, bool and nil. Strings are unescaped as
// encoding/json does: a lone or misordered surrogate escape becomes U+FFFD,
// and so does each byte of invalid UTF-8 (callers that refuse invalid
// UTF-8 check it first). It nests at most maxDepth arrays and objects.
//
// It reads the text once, and makes each map at its final size; the
// value is nil unless the result is jsonOK or jsonDuplicate.
func decodeJSONValue(body []byte, maxDepth int) (any, jsonResult) {
	d := jsonDecoders.Get().(*jsonDecoder)
	d.b, d.maxDepth = body, maxDepth
	v, result := d.decode()
	d.reset()
	jsonDecoders.Put(d)
	return v, result
}

var jsonDecoders = sync.Pool{New: func() any {
	return &jsonDecoder{keys: make([]string, 0, 16), vals: make([]any, 0, 32)}
}}

// jsonDecoder holds the state of one decodeJSONValue; it is pooled for its
// buffers.
type jsonDecoder struct {
	b        []byte
	i        int
	depth    int
	maxDepth int

	duplicate bool
	tooDeep   bool

	// keys and vals hold the members of the objects and the elements of
	// the arrays being decoded, innermost last, so that each map is made
	// once at its final size.
	keys    []string
	vals    []any
	scratch []byte // unescaped string
}

func (d *jsonDecoder) decode() (any, jsonResult) {
	v, ok := d.value()
	if ok {
		d.skipSpace()
		ok = d.i == len(d.b)
	}
	switch {
	case d.tooDeep:
		return nil, jsonTooDeep
	case !ok:
		return nil, jsonMalformed
	case d.duplicate:
		return v, jsonDuplicate
	}
	return v, jsonOK
}

// reset readies d for the pool: nothing of the text kept, buffers grown
// by a large text dropped.
func (d *jsonDecoder) reset() {
	clear(d.keys)
	clear(d.vals)
	*d = jsonDecoder{keys: d.keys[:0], vals: d.vals[:0], scratch: d.scratch[:0]}
	if cap(d.keys) > 1024 {
		d.keys = make([]string, 0, 16)
	}
	if cap(d.vals) > 1024 {
		d.vals = make([]any, 0, 32)
	}
	if cap(d.scratch) > 64<<10 {
		d.scratch = nil
	}
}

func (d *jsonDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value() (any, bool) {
	d.skipSpace()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		return boxString(s), true
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return d.number()
		}
	}
	return nil, false
}

func (d *jsonDecoder) literal(word string) bool {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return false
	}
	d.i += len(word)
	return true
}

// enter counts one more level of nesting; false when that is too deep.
func (d *jsonDecoder) enter() bool {
	d.depth++
	if d.depth > d.maxDepth {
		d.tooDeep = true
		return false
	}
	return true
}

func (d *jsonDecoder) object() (any, bool) {
	if !d.enter() {
		return nil, false
	}
	d.i++ // '{'
	keyBase, valBase := len(d.keys), len(d.vals)
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return map[string]any{}, true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
		d.skipSpace()
		if d.i >= len(d.b) {
			return nil, false
		}
		if c := d.b[d.i]; c == ',' {
			d.i++
			continue
		} else if c != '}' {
			return nil, false
		}
		d.i++
		break
	}
	keys, vals := d.keys[keyBase:], d.vals[valBase:]
	m := make(map[string]any, len(keys))
	for j, k := range keys {
		m[k] = vals[j]
	}
	if len(m) != len(keys) {
		d.duplicate = true
	}
	clear(vals)
	d.keys, d.vals = d.keys[:keyBase], d.vals[:valBase]
	d.depth--
	return m, true
}

func (d *jsonDecoder) array() (any, bool) {
	if !d.enter() {
		return nil, false
	}
	d.i++ // '['
	base := len(d.vals)
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return []any{}, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		d.vals = append(d.vals, v)
		d.skipSpace()
		if d.i >= len(d.b) {
			return nil, false
		}
		if c := d.b[d.i]; c == ',' {
			d.i++
			continue
		} else if c != ']' {
			return nil, false
		}
		d.i++
		break
	}
	list := make([]any, len(d.vals)-base)
	copy(list, d.vals[base:])
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	d.depth--
	return list, true
}
func (d *jsonDecoder) number() (any, bool) {
	b, i := d.b, d.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return nil, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return nil, false
		}
		i = j
	}
	n := json.Number(b[d.i:i])
	d.i = i
	return n, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// str decodes the string at d.i. Strings without escapes (most of them)
// are copied once; the names of JSON-RPC and MCP members, and the
// JSON-RPC version, are not copied at all.
func (d *jsonDecoder) str() (string, bool) {
	b := d.b
	start := d.i + 1
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			d.i = j + 1
			return internJSONString(b[start:j]), true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return d.strSlow(start, j)
		}
	}
	return "", false
}

// strSlow decodes a string from j on, b[start:j] being plain ASCII.
func (d *jsonDecoder) strSlow(start, j int) (string, bool) {
	b := d.b
	buf := append(d.scratch[:0], b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			d.i = j + 1
			d.scratch = buf
			return string(buf), true
		case c < 0x20:
			return "", false
		case c < 0x80:
			if c != '\\' {
				buf = append(buf, c)
				j++
				continue
			}
			if j+1 >= len(b) {
				return "", false
			}
			switch e := b[j+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(b[j+2:])
				if r < 0 {
					return "", false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					// A pair when a low surrogate escape follows; else
					// U+FFFD, and what follows is read on its own.
					if len(b)-j >= 6 && b[j] == '\\' && b[j+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(b[j+2:])); pair != unicode.ReplacementChar {
							r = pair
							j += 6
						}
					}
					if utf16.IsSurrogate(r) {
						r = unicode.ReplacementChar
					}
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return "", false
			}
			j += 2
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, b[j:j+size]...)
			}
			j += size
		}
	}
	return "", false
}

// hex4 reads four hex digits; -1 when there are not four.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// boxString is any(s), without allocating for the values JSON-RPC bodies
// repeat.
func boxString(s string) any {
	switch s {
	case "2.0":
		return "2.0"
	case "tools/call":
		return "tools/call"
	case "tools/list":
		return "tools/list"
	case "resources/read":
		return "resources/read"
	case "prompts/get":
		return "prompts/get"
	}
	return s
}

// internJSONString returns the strings every JSON-RPC body repeats
// without allocating them.
func internJSONString(b []byte) string {
	switch string(b) {
	case "jsonrpc":
		return "jsonrpc"
	case "2.0":
		return "2.0"
	case "id":
		return "id"
	case "method":
		return "method"
	case "params":
		return "params"
	case "name":
		return "name"
	case "arguments":
		return "arguments"
	case "tools/call":
		return "tools/call"
	}
	return string(b)
}

// checkFolded refuses a key of obj that equals one of members ignoring
// case (Unicode simple folding) without being it.
func checkFolded(obj map[string]any, members []string, id json.RawMessage) error {
	for key := range obj {
		// Members are ASCII; an ASCII key of another length cannot fold to
		// one (a non-ASCII key can: U+212A KELVIN SIGN folds to "k").
		ascii := isASCII(key)
		for _, m := range members {
			if key == m || (ascii && len(key) != len(m)) {
				continue
			}
			if strings.EqualFold(key, m) {
				if _, exact := obj[m]; exact {
					return rpcError(rpcInvalidRequest, id, msgDuplicateKey)
				}
				return rpcError(rpcInvalidRequest, id, msgInvalidRequest)
			}
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
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
		if canonicalInteger(string(t)) {
			return append(b, t...), nil
		}
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
		type member struct {
			key   string
			value any
		}
		var small [8]member
		members := small[:0]
		for k, e := range t {
			members = append(members, member{k, e})
		}
		slices.SortFunc(members, func(x, y member) int { return compareUTF16(x.key, y.key) })
		b = append(b, '{')
		for i, m := range members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, m.key)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, m.value); err != nil {
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
	plain := 0 // s[plain:i] needs no escape
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[plain:i]...)
		plain = i + 1
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
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	b = append(b, s[plain:]...)
	return append(b, '"')
}

// canonicalInteger reports a JSON number that RFC 8785 writes as it is: an
// integer of at most 15 digits (exact in a float64, and below 1e21) other
// than -0.
func canonicalInteger(n string) bool {
	digits := n
	if digits != "" && digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" || len(digits) > 15 || (digits[0] == '0' && len(n) > 1) {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
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
