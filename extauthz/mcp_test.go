package extauthz

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/gowebpki/jcs"

	"github.com/writ-dev/writ/policies"
)

// canonicalDigest is the hex SHA-256 of a canonical JSON text written out
// by hand, to check argumentsDigest against.
func canonicalDigest(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:])
}

func b64(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }

func TestParseMCP(t *testing.T) {
	toolsCall := readMCPFixture(t, "tools_call.json")
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		wantCall *policies.MCP
		wantID   string
		wantErr  *requestError
	}{
		{
			name: "tools/call",
			body: toolsCall,
			wantCall: &policies.MCP{Method: "tools/call", Name: "search_issues", Arguments: map[string]any{
				"q": "bug", "limit": json.Number("10"), "labels": []any{"p1", "ui"}, "filter": map[string]any{"state": "open"},
			}},
			wantID: "7",
		},
		{
			name:     "tools/call without arguments, string id",
			body:     readMCPFixture(t, "tools_call_no_arguments.json"),
			wantCall: &policies.MCP{Method: "tools/call", Name: "list_repos"},
			wantID:   `"req-1"`,
		},
		{
			name:     "tools/call with matching headers",
			body:     toolsCall,
			headers:  map[string]string{"mcp-method": "tools/call", "mcp-name": "search_issues"},
			wantCall: &policies.MCP{Method: "tools/call", Name: "search_issues", Arguments: map[string]any{"q": "bug", "limit": json.Number("10"), "labels": []any{"p1", "ui"}, "filter": map[string]any{"state": "open"}}},
			wantID:   "7",
		},
		{
			name:     "resources/read",
			body:     readMCPFixture(t, "resources_read.json"),
			headers:  map[string]string{"mcp-method": "resources/read", "mcp-name": "file:///srv/reports/q3.pdf"},
			wantCall: &policies.MCP{Method: "resources/read", Name: "file:///srv/reports/q3.pdf"},
			wantID:   "2",
		},
		{
			name:     "prompts/get",
			body:     readMCPFixture(t, "prompts_get.json"),
			wantCall: &policies.MCP{Method: "prompts/get", Name: "code_review", Arguments: map[string]any{"language": "go"}},
			wantID:   "3",
		},
		{
			name:     "tools/list: method only",
			body:     readMCPFixture(t, "tools_list.json"),
			headers:  map[string]string{"mcp-method": "tools/list"},
			wantCall: &policies.MCP{Method: "tools/list"},
			wantID:   "1",
		},
		{
			name:     "notification has no id",
			body:     readMCPFixture(t, "notification.json"),
			headers:  map[string]string{"mcp-method": "notifications/initialized"},
			wantCall: &policies.MCP{Method: "notifications/initialized"},
		},
		{
			name:     "response to a server request has an empty method",
			body:     readMCPFixture(t, "response.json"),
			wantCall: &policies.MCP{},
			wantID:   `"srv-9"`,
		},
		{
			name:     "null id",
			body:     `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
			wantCall: &policies.MCP{Method: "ping"},
			wantID:   "null",
		},
		{
			name:     "Base64-encoded Mcp-Name",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Übersetzen"}}`,
			headers:  map[string]string{"mcp-method": "tools/call", "mcp-name": b64("Übersetzen")},
			wantCall: &policies.MCP{Method: "tools/call", Name: "Übersetzen"},
			wantID:   "1",
		},
		{
			name:     "empty body, no headers: not MCP",
			body:     "  \n",
			wantCall: nil,
		},
		{
			name:    "batch",
			body:    readMCPFixture(t, "batch.json"),
			wantErr: &requestError{Status: 400, Code: -32600, Message: "JSON-RPC batches are not supported; send one request per HTTP request"},
		},
		{
			name:    "empty batch",
			body:    `[]`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgBatch},
		},
		{
			name:    "wrong jsonrpc version",
			body:    readMCPFixture(t, "wrong_version.json"),
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("4"), Message: "invalid request"},
		},
		{
			name:    "jsonrpc missing",
			body:    `{"id":4,"method":"tools/list"}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("4"), Message: "invalid request"},
		},
		{
			name:    "jsonrpc as a number",
			body:    `{"jsonrpc":2.0,"id":4,"method":"tools/list"}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("4"), Message: "invalid request"},
		},
		{
			name:    "missing method",
			body:    readMCPFixture(t, "missing_method.json"),
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("5"), Message: "invalid request"},
		},
		{
			name:    "empty method",
			body:    `{"jsonrpc":"2.0","id":5,"method":""}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("5"), Message: "invalid request"},
		},
		{
			name:    "method not a string",
			body:    `{"jsonrpc":"2.0","id":5,"method":["tools/call"]}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("5"), Message: "invalid request"},
		},
		{
			name:    "response with both result and error",
			body:    `{"jsonrpc":"2.0","id":5,"result":{},"error":{"code":1}}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("5"), Message: "invalid request"},
		},
		{
			name:    "response without an id",
			body:    `{"jsonrpc":"2.0","result":{}}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: "invalid request"},
		},
		{
			name:    "id that is an object",
			body:    `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: "invalid request"},
		},
		{
			name:    "body that is a JSON string",
			body:    `"tools/call"`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: "invalid request"},
		},
		{
			name:     "name at the length limit",
			body:     `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"` + strings.Repeat("n", maxNameBytes) + `"}}`,
			wantCall: &policies.MCP{Method: "tools/call", Name: strings.Repeat("n", maxNameBytes)},
			wantID:   "6",
		},
		{
			name:     "uri with letters beyond ASCII",
			body:     `{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"file:///Dokumente/Übersicht.md"}}`,
			wantCall: &policies.MCP{Method: "resources/read", Name: "file:///Dokumente/Übersicht.md"},
			wantID:   "6",
		},
		{
			name:    "name over the length limit",
			body:    `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"` + strings.Repeat("n", maxNameBytes+1) + `"}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "name with a space (a second scope in the writ token)",
			body:    `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"x mcp:tools:delete_repo"}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "name with a bidirectional override",
			body:    `{"jsonrpc":"2.0","id":6,"method":"prompts/get","params":{"name":"search\u202eoper_eteled"}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "uri with an escaped newline",
			body:    `{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"file:///a\nb"}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "name of the wrong type",
			body:    readMCPFixture(t, "name_not_string.json"),
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "name missing",
			body:    `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"arguments":{}}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "params missing",
			body:    `{"jsonrpc":"2.0","id":6,"method":"prompts/get"}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "params an array",
			body:    `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":["x"]}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "params a string",
			body:    `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":"x"}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("6"), Message: "invalid params"},
		},
		{
			name:    "arguments an array",
			body:    readMCPFixture(t, "arguments_array.json"),
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("8"), Message: "invalid params"},
		},
		{
			name:    "arguments null",
			body:    `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"x","arguments":null}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("8"), Message: "invalid params"},
		},
		{
			name:    "resources/read without uri",
			body:    `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"name":"q3.pdf"}}`,
			wantErr: &requestError{Status: 400, Code: -32602, ID: json.RawMessage("2"), Message: "invalid params"},
		},
		{
			name:    "duplicate method",
			body:    readMCPFixture(t, "duplicate_method.json"),
			wantErr: &requestError{Status: 400, Code: -32600, Message: "duplicate key in JSON-RPC request"},
		},
		{
			name:    "duplicate name in params",
			body:    readMCPFixture(t, "duplicate_name.json"),
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name:    "duplicate key inside arguments",
			body:    readMCPFixture(t, "duplicate_argument.json"),
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name:    "duplicate arguments",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"arguments":{"a":2}}}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name:    "method spelled twice with other case",
			body:    readMCPFixture(t, "case_variant_method.json"),
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name:    "name spelled twice with other case",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","NAME":"delete"}}`,
			wantErr: &requestError{Status: 400, Code: -32600, ID: json.RawMessage("1"), Message: msgDuplicateKey},
		},
		{
			name:    "member matched only by Unicode case folding (long s)",
			body:    `{"jſonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name:    "lone case variant of method",
			body:    `{"jsonrpc":"2.0","id":1,"Method":"tools/call"}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgInvalidRequest},
		},
		{
			name:    "malformed JSON",
			body:    readMCPFixture(t, "malformed.json"),
			wantErr: &requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name:    "trailing data",
			body:    `{"jsonrpc":"2.0","method":"ping"} {"jsonrpc":"2.0","method":"x"}`,
			wantErr: &requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name:    "trailing brace",
			body:    `{"jsonrpc":"2.0","method":"ping"}}`,
			wantErr: &requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name:    "invalid UTF-8",
			body:    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"read\xff\"}}",
			wantErr: &requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name:    "nesting too deep",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}}`,
			wantErr: &requestError{Status: 400, Code: -32600, Message: msgTooDeep},
		},
		{
			name:    "Mcp-Method header differs from the body",
			body:    toolsCall,
			headers: map[string]string{"mcp-method": "tools/list"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: "Mcp-Method header does not match the JSON-RPC body"},
		},
		{
			name:    "Mcp-Method header differs only by case",
			body:    toolsCall,
			headers: map[string]string{"mcp-method": "Tools/Call"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: msgMethodMismatch},
		},
		{
			name:    "Mcp-Name header differs from the body",
			body:    toolsCall,
			headers: map[string]string{"mcp-method": "tools/call", "mcp-name": "delete_repo"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: "Mcp-Name header does not match the JSON-RPC body"},
		},
		{
			name:    "body names a tool the Mcp-Name header does not",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}}`,
			headers: map[string]string{"mcp-name": "search_issues"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("1"), Message: msgNameMismatch},
		},
		{
			name:    "Mcp-Name header for a call that names nothing",
			body:    readMCPFixture(t, "tools_list.json"),
			headers: map[string]string{"mcp-method": "tools/list", "mcp-name": "search_issues"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("1"), Message: msgNameMismatch},
		},
		{
			name:    "Mcp-Method header with a response body",
			body:    readMCPFixture(t, "response.json"),
			headers: map[string]string{"mcp-method": "roots/list"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage(`"srv-9"`), Message: msgMethodMismatch},
		},
		{
			name:    "Mcp-Method header without a body",
			body:    "",
			headers: map[string]string{"mcp-method": "tools/call"},
			wantErr: &requestError{Status: 400, Code: -32020, Message: msgMethodMismatch},
		},
		{
			name:    "Mcp-Name header without a body",
			body:    "",
			headers: map[string]string{"mcp-name": "search_issues"},
			wantErr: &requestError{Status: 400, Code: -32020, Message: msgNameMismatch},
		},
		{
			name:    "Mcp-Name in Base64 that does not decode",
			body:    toolsCall,
			headers: map[string]string{"mcp-name": "=?base64?not base64!?="},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: msgNameMismatch},
		},
		{
			name:    "plain Mcp-Name with a byte outside printable ASCII",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Übersetzen"}}`,
			headers: map[string]string{"mcp-name": "Übersetzen"},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("1"), Message: msgNameMismatch},
		},
		{
			name:    "Base64 Mcp-Method that names another method",
			body:    toolsCall,
			headers: map[string]string{"mcp-method": b64("tools/list")},
			wantErr: &requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: msgMethodMismatch},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call, id, err := parseMCP([]byte(tt.body), tt.headers)
			if tt.wantErr != nil {
				if call != nil || id != nil {
					t.Errorf("call %+v, id %s returned with an error", call, id)
				}
				wantRefusal(t, err, *tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("parseMCP: %v", err)
			}
			if diff := cmp.Diff(tt.wantCall, call); diff != "" {
				t.Errorf("call: %s", diff)
			}
			if string(id) != tt.wantID {
				t.Errorf("id = %s, want %s", id, tt.wantID)
			}
		})
	}
}

func TestDecodeMCPHeader(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "tools/call", want: "tools/call"},
		{in: "", want: ""},
		{in: b64("  spaced  "), want: "  spaced  "},
		{in: b64("=?base64?literal?="), want: "=?base64?literal?="},
		{in: "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", want: "=?base64?literal?="},
		{in: "=?base64??=", want: ""},
		{in: "=?BASE64?dG9vbA==?=", want: "=?BASE64?dG9vbA==?="}, // the markers are case-sensitive
		{in: "=?base64?dG9vbA?=", wantErr: true},                 // padding required
		{in: "=?base64?" + base64.StdEncoding.EncodeToString([]byte{0xff}) + "?=", wantErr: true},
		{in: "tab\there", wantErr: true},
		{in: "naïve", wantErr: true},
	}
	for _, tt := range tests {
		got, err := decodeMCPHeader(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("decodeMCPHeader(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestArgumentsDigest(t *testing.T) {
	tests := []struct {
		name      string
		args      string
		canonical string
	}{
		{name: "keys sorted, spaces dropped", args: `{ "b": 1, "a": "x" }`, canonical: `{"a":"x","b":1}`},
		{name: "numbers in shortest form", args: `{"n": 1.50, "m": 1e2, "k": -0}`, canonical: `{"k":0,"m":100,"n":1.5}`},
		{name: "strings re-escaped canonically", args: `{"s": "\u003c\u00e9\/"}`, canonical: `{"s":"<é/"}`},
		{name: "nested", args: `{"z": {"y": [3, {"b": true, "a": null}]}}`, canonical: `{"z":{"y":[3,{"a":null,"b":true}]}}`},
		{name: "empty", args: `{}`, canonical: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeJSONRPC([]byte(tt.args))
			if err != nil {
				t.Fatal(err)
			}
			got, err := argumentsDigest(v.(map[string]any))
			if err != nil {
				t.Fatal(err)
			}
			if want := canonicalDigest(tt.canonical); got != want {
				t.Errorf("digest = %s, want sha256(%s) = %s", got, tt.canonical, want)
			}
		})
	}
	if got, err := argumentsDigest(nil); got != "" || err != nil {
		t.Errorf("argumentsDigest(nil) = %q, %v", got, err)
	}
	if _, err := argumentsDigest(map[string]any{"n": json.Number("1e400")}); err == nil {
		t.Error("a number beyond float64 was canonicalized")
	}
}

func BenchmarkParseMCP(b *testing.B) {
	body := []byte(readMCPFixture(b, "tools_call.json"))
	headers := map[string]string{"mcp-method": "tools/call", "mcp-name": "search_issues"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseMCP(body, headers); err != nil {
			b.Fatal(err)
		}
	}
}

// randomJSON builds a decoded JSON value with the shapes that test a
// canonical form: keys that sort differently by bytes and by UTF-16,
// control characters, escapes, and numbers in many spellings.
func randomJSON(r *rand.Rand, depth int) any {
	k := r.IntN(7)
	if depth > 3 {
		k = r.IntN(4)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return randomJSONString(r)
	case 3:
		return json.Number([]string{
			"0", "-0", "1", "-1", "0.1", "1.50", "1e2", "1E-2", "123456789012345678901234567890",
			"5e-324", "1.7976931348623157e308", "9007199254740993", "0.000001", "1e21", "1e-7",
			strconv.FormatFloat(r.NormFloat64()*1e9, 'g', -1, 64), strconv.Itoa(r.IntN(1 << 30)),
		}[r.IntN(17)])
	case 4, 5:
		m := map[string]any{}
		for range r.IntN(6) {
			m[randomJSONString(r)] = randomJSON(r, depth+1)
		}
		return m
	default:
		var list []any
		for range r.IntN(5) {
			list = append(list, randomJSON(r, depth+1))
		}
		if list == nil {
			list = []any{}
		}
		return list
	}
}

var jsonStringPool = []string{
	"", "a", "b", "A", "\u00e9", "\ufb01", "\U0001f600", "\ue000", "\uffff", "\U00010000",
	"\"", "\\", "/", "\b\f\n\r\t", "\x00\x01\x1f\x7f", "<>&", "\u2028", "10", "1", "key",
}

func randomJSONString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(jsonStringPool[r.IntN(len(jsonStringPool))])
	}
	return b.String()
}

// TestCanonicalMatchesJCS holds writ's canonical writer byte for byte
// equal to jcs.Transform.
func TestCanonicalMatchesJCS(t *testing.T) {
	check := func(t *testing.T, v map[string]any) {
		t.Helper()
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := jcs.Transform(raw)
		got, gotErr := appendCanonical(nil, v)
		if (wantErr != nil) != (gotErr != nil) {
			t.Fatalf("jcs error %v, writ error %v, for %s", wantErr, gotErr, raw)
		}
		if wantErr == nil && string(got) != string(want) {
			t.Fatalf("canonical form differs for %s:\njcs:  %s\nwrit: %s", raw, want, got)
		}
	}
	for name, body := range mcpFixtures(t) {
		v, err := decodeJSONRPC(body)
		if err != nil {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			t.Run(name, func(t *testing.T) { check(t, m) })
		}
	}
	r := rand.New(rand.NewPCG(8785, 1))
	for range 2000 {
		m, _ := randomJSON(r, 4).(map[string]any)
		if m == nil {
			m = map[string]any{"k": randomJSON(r, 0)}
		}
		check(t, m)
	}
	check(t, map[string]any{"big": json.Number("1e400")})
}

func TestCompareUTF16(t *testing.T) {
	// U+10000 is D800 DC00 in UTF-16, so it sorts before U+E000 although
	// its code point is larger.
	keys := []string{"\ue000", "\U00010000", "b", "a", "\U0001f600", "\uffff", "aa", ""}
	slices.SortFunc(keys, compareUTF16)
	want := []string{"", "a", "aa", "b", "\U00010000", "\U0001f600", "\ue000", "\uffff"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("order: %s", diff)
	}
}

func BenchmarkArgumentsDigest(b *testing.B) {
	v, err := decodeJSONRPC([]byte(loadCheckRequest(b, "mcp_tools_call.json").GetAttributes().GetRequest().GetHttp().GetBody()))
	if err != nil {
		b.Fatal(err)
	}
	args := v.(map[string]any)["params"].(map[string]any)["arguments"].(map[string]any)
	raw, _ := json.Marshal(args)
	b.Run("writ", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := argumentsDigest(args); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jcs.Transform", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jcs.Transform(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// refDecodeJSON is the reference for decodeJSON: encoding/json's Decoder
// with UseNumber, trailing data refused.
func refDecodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// refDecodeJSONRPC is the reference for decodeJSONRPC, built on
// encoding/json: UTF-8 checked first, then nesting counted on the text,
// then the decode, then duplicates found as fewer map entries than keys
// in the text.
func refDecodeJSONRPC(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, rpcError(rpcParseError, nil, msgParseError)
	}
	keys, depth := 0, 0
	for i, d := 0, 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
			j := i + 1
			for j < len(body) && strings.IndexByte(" \t\r\n", body[j]) >= 0 {
				j++
			}
			if j < len(body) && body[j] == ':' {
				keys++
			}
		case '{', '[':
			d++
			depth = max(depth, d)
		case '}', ']':
			d--
		}
	}
	if depth > maxRPCDepth {
		return nil, rpcError(rpcInvalidRequest, nil, msgTooDeep)
	}
	v, err := refDecodeJSON(body)
	if err != nil {
		return nil, rpcError(rpcParseError, nil, msgParseError)
	}
	var count func(any) int
	count = func(v any) int {
		n := 0
		switch t := v.(type) {
		case map[string]any:
			n = len(t)
			for _, e := range t {
				n += count(e)
			}
		case []any:
			for _, e := range t {
				n += count(e)
			}
		}
		return n
	}
	if count(v) != keys {
		return nil, rpcError(rpcInvalidRequest, nil, msgDuplicateKey)
	}
	return v, nil
}

// checkDecodersAgree holds decodeJSON and decodeJSONRPC to their
// encoding/json references: the same value (nil slices and maps told
// apart from empty ones), or both refusing, with the same JSON-RPC error.
func checkDecodersAgree(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := refDecodeJSON(body)
	got, gotErr := decodeJSON(body)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("decodeJSON(%q): error %v, encoding/json error %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("decodeJSON(%q) = %#v, encoding/json %#v", body, got, want)
	}
	want, wantErr = refDecodeJSONRPC(body)
	got, gotErr = decodeJSONRPC(body)
	if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
		t.Fatalf("decodeJSONRPC(%q): error %v, reference %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("decodeJSONRPC(%q) = %#v, reference %#v", body, got, want)
	}
}

// jsonEdgeCases are texts where a JSON decoder can go wrong.
var jsonEdgeCases = []string{
	``, ` `, `{}`, `[]`, `[ ]`, `{ }`, `null`, `true`, `false`, `nul`, `tru`, `falsey`, `0`, `-0`, `01`, `-`, `1.`, `.1`,
	`1e`, `1e+`, `1E-2`, `1.5e+10`, `-12.50`, `123456789012345678901234567890`, `1e400`, `2.`, `+1`, `0x10`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ude00"`,
	`"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\ude00\ud83d"`, `"\ud83d\uZZZZ"`, `"\u12"`, `"\x41"`, `"\'"`,
	`"\u0000"`, "\"\x00\"", "\"\x1f\"", "\"\x7f\"", `"é"`, "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"",
	"\xef\xbb\xbf{}", "{}\xef\xbb\xbf", `{"a":1}x`, `{"a":1} {"b":2}`, `{"a":1}` + "\n\t\r ", `[1,]`, `[,1]`,
	`{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{'a':1}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":1`, `[1`,
	`"abc`, `"abc\`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"\ud800":1,"\udc00":2}`, `[{"a":1,"a":1}]`,
	`{"a":{"b":1,"b":2}}`, `{"a":[],"b":{},"c":[{}],"d":[[]]}`, `[null,true,false,"",0,{}]`,
	`{"a":1,"a":2,"x":` + strings.Repeat("[", 70), strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65), strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65),
	`[1,}` + strings.Repeat("[", 65), `"[[[[` + strings.Repeat("[", 70) + `"`, "\xff" + strings.Repeat("[", 70),
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"n","arguments":{"k":"v","k":"w"}}}`,
}

func TestDecodersMatchEncodingJSON(t *testing.T) {
	for _, s := range jsonEdgeCases {
		checkDecodersAgree(t, []byte(s))
	}
	for _, body := range mcpFixtures(t) {
		checkDecodersAgree(t, body)
	}
	r := rand.New(rand.NewPCG(7159, 2))
	for range 2000 {
		raw, err := json.Marshal(randomJSON(r, 0))
		if err != nil {
			t.Fatal(err)
		}
		checkDecodersAgree(t, raw)
	}
}

// TestDecodeJSONDepth: decodeJSON nests as deep as encoding/json and no
// deeper.
func TestDecodeJSONDepth(t *testing.T) {
	for _, n := range []int{jsonMaxDepth, jsonMaxDepth + 1} {
		body := []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
		_, wantErr := refDecodeJSON(body)
		_, gotErr := decodeJSON(body)
		if (wantErr != nil) != (gotErr != nil) || (gotErr != nil) != (n > jsonMaxDepth) {
			t.Errorf("depth %d: error %v, encoding/json error %v", n, gotErr, wantErr)
		}
	}
}
