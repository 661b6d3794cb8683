package extauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/gowebpki/jcs"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/policies"
)

// mcpFixtures returns the JSON-RPC bodies under testdata/mcp.
func mcpFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "mcp", "*.json"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no MCP fixtures: %v", err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// encodeLines and decodeLines carry a string map through the fuzzer as
// "key<sep>value" lines.
func encodeLines(m map[string]string, sep string) string {
	var b strings.Builder
	for _, k := range sortedMapKeys(m) {
		b.WriteString(k + sep + m[k] + "\n")
	}
	return b.String()
}

func decodeLines(s, sep string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, sep); ok {
			m[k] = v
		}
	}
	return m
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// refusalMessages are every message describe may answer with: fixed
// strings, so nothing from the request is ever echoed.
var refusalMessages = regexp.MustCompile(`^(` + strings.Join([]string{
	regexp.QuoteMeta(msgTruncatedBody), regexp.QuoteMeta(msgInvalidPath), regexp.QuoteMeta(msgParseError),
	regexp.QuoteMeta(msgInvalidRequest), regexp.QuoteMeta(msgInvalidParams), regexp.QuoteMeta(msgBatch),
	regexp.QuoteMeta(msgDuplicateKey), regexp.QuoteMeta(msgTooDeep), regexp.QuoteMeta(msgMethodMismatch),
	regexp.QuoteMeta(msgNameMismatch), regexp.QuoteMeta(msgArgumentsDigest),
	`request headers exceed [0-9]+ bytes`, `request body exceeds [0-9]+ bytes`,
}, "|") + `)$`)

var rpcCodes = []int{0, rpcParseError, rpcInvalidRequest, rpcInvalidParams, rpcHeaderMismatch}

func FuzzDescribe(f *testing.F) {
	fixture := loadCheckRequest(f, "mcp_tools_call.json")
	h := fixture.GetAttributes().GetRequest().GetHttp()
	f.Add(h.GetMethod(), h.GetPath(), encodeLines(h.GetHeaders(), ": "), []byte(h.GetBody()),
		encodeLines(fixture.GetAttributes().GetContextExtensions(), "="), h.GetSize(), false)
	for _, body := range mcpFixtures(f) {
		f.Add("POST", "/mcp", "content-type: application/json\n", body, "mcp=true\n", int64(len(body)), true)
		f.Add("POST", "/api/x?y=1", "content-type: application/json\nmcp-method: tools/call\nmcp-name: search_issues\n", body, "", int64(0), false)
	}
	f.Add("GET", "/a/%zz", "", []byte(nil), "", int64(0), false)
	f.Add("POST", "//admin/x", "x-envoy-auth-partial-body: true\n", []byte(`{"a":1}`), "", int64(-1), false)

	f.Fuzz(func(t *testing.T, method, path, headerLines string, body []byte, extLines string, size int64, raw bool) {
		c := checkRequest{method: method, path: path, headers: decodeLines(headerLines, ": "), ext: decodeLines(extLines, "="), size: size}
		if raw {
			c.rawBody = body
		} else {
			c.body = string(body)
		}
		d, err := describe(c.build(), Limits{MaxHeaderBytes: 4096, MaxBodyBytes: 8192})
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("plain error for a well-formed CheckRequest: %v", err)
			}
			if re.Status < 400 || re.Status > 499 {
				t.Fatalf("refusal status %d", re.Status)
			}
			if !refusalMessages.MatchString(re.Message) {
				t.Fatalf("refusal message %q is not one of writ's fixed messages", re.Message)
			}
			if !slices.Contains(rpcCodes, re.Code) {
				t.Fatalf("JSON-RPC code %d", re.Code)
			}
			if d != nil {
				t.Fatal("description returned with a refusal")
			}
			return
		}
		in := d.input
		if in.MCP != nil && in.TruncatedBody {
			t.Fatal("MCP call described from a truncated body")
		}
		if in.TruncatedBody && in.ParsedBody != nil {
			t.Fatal("truncated body parsed")
		}
		if in.Resource == nil || in.Resource.Extensions == nil || in.ParsedQuery == nil || len(in.ParsedPath) == 0 {
			t.Fatalf("resource %v, query %v, path %v", in.Resource, in.ParsedQuery, in.ParsedPath)
		}
		if (in.MCP == nil || in.MCP.Arguments == nil) != (d.argumentsDigest == "") {
			t.Fatalf("arguments %v but digest %q", in.MCP, d.argumentsDigest)
		}
		if m, ok := d.headers[hdrMCPMethod]; ok {
			decoded, err := decodeMCPHeader(m)
			if err != nil || in.MCP == nil || in.MCP.Method != decoded {
				t.Fatalf("Mcp-Method %q accepted against %+v", m, in.MCP)
			}
		}
	})
}

func FuzzParseMCP(f *testing.F) {
	for _, body := range mcpFixtures(f) {
		f.Add(body, "", "")
		var probe struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.Method != "" {
			f.Add(body, probe.Method, probe.Params.Name)
			f.Add(body, probe.Method+"x", "")
		}
	}
	f.Add([]byte(nil), "tools/call", "")
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Ü"}}`), "tools/call", b64("Ü"))
	for _, s := range jsonEdgeCases {
		f.Add([]byte(s), "", "")
	}
	f.Add([]byte(`{"jsonrpc":"2.0","id":1.5e3,"method":"tools/call","params":{"name":"a\u00e9","arguments":{"\ud83d\ude00":[-0,1E2,0.10,"\u0000<"],"b":{"\u0061":null}}}}`), "", "")

	f.Fuzz(func(t *testing.T, body []byte, methodHeader, nameHeader string) {
		headers := map[string]string{}
		if methodHeader != "" {
			headers[hdrMCPMethod] = methodHeader
		}
		if nameHeader != "" {
			headers[hdrMCPName] = nameHeader
		}
		// The decoders give what encoding/json gives, and writ's view of
		// the call is the view from encoding/json's value, its digest the
		// digest of jcs.Transform.
		checkDecodersAgree(t, body)
		call, id, err := parseMCP(body, headers)
		refCall, refID, refErr := refParseMCP(body, headers)
		if fmt.Sprint(err) != fmt.Sprint(refErr) {
			t.Fatalf("error %v, from encoding/json %v", err, refErr)
		}
		if diff := cmp.Diff(refCall, call); diff != "" {
			t.Fatalf("call differs from encoding/json's (-want +got):\n%s", diff)
		}
		if !bytes.Equal(id, refID) {
			t.Fatalf("id %s, from encoding/json %s", id, refID)
		}
		if call != nil && call.Arguments != nil {
			digest, err := argumentsDigest(call.Arguments)
			want, wantErr := jcsDigest(refCall.Arguments)
			if (err != nil) != (wantErr != nil) || digest != want {
				t.Fatalf("digest %q (%v), jcs.Transform %q (%v)", digest, err, want, wantErr)
			}
		}
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.Status != 400 || re.Code == 0 || !slices.Contains(rpcCodes, re.Code) {
				t.Fatalf("error %v", err)
			}
			if !refusalMessages.MatchString(re.Message) {
				t.Fatalf("message %q", re.Message)
			}
			return
		}
		if call == nil {
			if len(headers) > 0 || strings.TrimSpace(string(body)) != "" {
				t.Fatalf("no call from body %q with headers %v", body, headers)
			}
			return
		}
		if id != nil && !json.Valid(id) {
			t.Fatalf("id %q is not JSON", id)
		}
		// Whatever writ read is what any JSON decoder reads: no duplicate
		// or case-variant member could have shown it something else.
		var std struct {
			Method string `json:"method"`
		}
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("writ accepted a body encoding/json refuses: %v", err)
		}
		if std.Method != call.Method {
			t.Fatalf("writ read method %q, encoding/json (case-insensitive) %q", call.Method, std.Method)
		}
		if methodHeader != "" {
			if m, _ := decodeMCPHeader(methodHeader); m != call.Method {
				t.Fatalf("Mcp-Method %q accepted for %q", methodHeader, call.Method)
			}
		}
		if nameHeader != "" {
			if n, _ := decodeMCPHeader(nameHeader); n != call.Name || n == "" {
				t.Fatalf("Mcp-Name %q accepted for %q", nameHeader, call.Name)
			}
		}
		if namedByName[call.Method] || namedByURI[call.Method] {
			if call.Name == "" {
				t.Fatalf("%s without a name", call.Method)
			}
		}
		if call.Arguments != nil {
			// Numbers beyond float64 are refused; anything else digests.
			_, _ = argumentsDigest(call.Arguments)
		}
	})
}

// refParseMCP is parseMCP on encoding/json's decoding of the body.
func refParseMCP(body []byte, headers map[string]string) (*policies.MCP, json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return parseMCP(body, headers) // nothing to decode
	}
	v, err := refDecodeJSONRPC(body)
	if err != nil {
		return nil, nil, err
	}
	return mcpFromBody(v, headers)
}

// jcsDigest is the hex SHA-256 of jcs.Transform of the arguments as
// encoding/json writes them.
func jcsDigest(args map[string]any) (string, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", err
	}
	canonical, err := jcs.Transform(raw)
	if err != nil {
		return "", err
	}
	return canonicalDigest(string(canonical)), nil
}

func FuzzAttributes(f *testing.F) {
	seed := func(a *authv3.AttributeContext) {
		b, err := proto.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(loadCheckRequest(f, "mcp_tools_call.json").GetAttributes())
	seed(everyField())
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		seed(randomAttributes(r))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		var a authv3.AttributeContext
		if err := proto.Unmarshal(b, &a); err != nil {
			return
		}
		got := attributesMap(&a)
		want, err := viaProtojson(&a)
		if err != nil {
			return // opa-envoy-plugin refuses such a request outright
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("attributesMap differs from protojson:\n%s", diff)
		}
	})
}
