package extauthz

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/writ-dev/writ/policies"
)

// loadCheckRequest reads a CheckRequest fixture written as protojson.
func loadCheckRequest(tb testing.TB, name string) *authv3.CheckRequest {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "checkrequest", name))
	if err != nil {
		tb.Fatal(err)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(b, &req); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return &req
}

// checkRequest builds a CheckRequest for an HTTP request.
type checkRequest struct {
	method, path string
	headers      map[string]string
	body         string
	rawBody      []byte
	size         int64
	ext          map[string]string
	principal    string
	headerMap    []*corev3.HeaderValue
	id           string
}

func (c checkRequest) build() *authv3.CheckRequest {
	method := c.method
	if method == "" {
		method = "POST"
	}
	path := c.path
	if path == "" {
		path = "/mcp"
	}
	h := &authv3.AttributeContext_HttpRequest{
		Id:      c.id,
		Method:  method,
		Path:    path,
		Host:    "tools.internal",
		Headers: c.headers,
		Body:    c.body,
		RawBody: c.rawBody,
		Size:    c.size,
	}
	if c.headerMap != nil {
		h.HeaderMap = &corev3.HeaderMap{Headers: c.headerMap}
	}
	attrs := &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: h},
		ContextExtensions: c.ext,
	}
	if c.principal != "" {
		attrs.Source = &authv3.AttributeContext_Peer{Principal: c.principal}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func mcpRoute() map[string]string { return map[string]string{"mcp": "true", "resource": "mcp://tools"} }

func jsonHeaders(extra ...string) map[string]string {
	h := map[string]string{"content-type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

func readMCPFixture(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mcp", name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// describe runs both phases, as Check does when the caller authenticates:
// describeHeaders, then describeBody.
func describe(req *authv3.CheckRequest, limits Limits) (*description, error) {
	d, err := describeHeaders(req, limits)
	if err != nil {
		return nil, err
	}
	if err := d.describeBody(limits); err != nil {
		return nil, err
	}
	return d, nil
}

// wantRefusal asserts err is exactly this requestError.
func wantRefusal(t *testing.T, err error, want requestError) {
	t.Helper()
	var re *requestError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want *requestError %+v", err, want)
	}
	if re.Status != want.Status || re.Code != want.Code || re.Message != want.Message || string(re.ID) != string(want.ID) {
		t.Fatalf("refusal = {%d %d %s %q}, want {%d %d %s %q}",
			re.Status, re.Code, re.ID, re.Message, want.Status, want.Code, want.ID, want.Message)
	}
}

func TestDescribeRefuses(t *testing.T) {
	big := strings.Repeat("a", 64<<10)
	toolsCall := readMCPFixture(t, "tools_call.json")
	tests := []struct {
		name   string
		req    checkRequest
		limits Limits
		want   requestError
	}{
		{
			name: "64 KiB header value",
			req:  checkRequest{headers: map[string]string{"x-big": big}},
			want: requestError{Status: 431, Message: "request headers exceed 65536 bytes"},
		},
		{
			name: "one byte over the header limit",
			// Names and values: 3 + 65529 + 3 + 2 = 65537.
			req:  checkRequest{headers: map[string]string{"x-a": strings.Repeat("v", 65536-3-3-1), "x-b": "vv"}},
			want: requestError{Status: 431, Message: "request headers exceed 65536 bytes"},
		},
		{
			name: "header_map counted too",
			req: checkRequest{headerMap: []*corev3.HeaderValue{
				{Key: "x-a", RawValue: []byte(strings.Repeat("v", 40000))},
				{Key: "x-a", Value: strings.Repeat("v", 30000)},
			}},
			want: requestError{Status: 431, Message: "request headers exceed 65536 bytes"},
		},
		{
			name:   "custom header limit",
			req:    checkRequest{headers: map[string]string{"x-a": "12345678"}},
			limits: Limits{MaxHeaderBytes: 10},
			want:   requestError{Status: 431, Message: "request headers exceed 10 bytes"},
		},
		{
			name: "body over the default limit",
			req:  checkRequest{headers: jsonHeaders(), body: strings.Repeat(" ", 1<<20+1)},
			want: requestError{Status: 413, Message: "request body exceeds 1048576 bytes"},
		},
		{
			name:   "raw body over a custom limit",
			req:    checkRequest{rawBody: []byte("0123456789A")},
			limits: Limits{MaxBodyBytes: 10},
			want:   requestError{Status: 413, Message: "request body exceeds 10 bytes"},
		},
		{
			name: "MCP route, Envoy's partial-body header",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders("x-envoy-auth-partial-body", "true"), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`},
			want: requestError{Status: 413, Message: msgTruncatedBody},
		},
		{
			name: "MCP route, size beyond the body sent",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders(), body: `{"jsonrpc":"2.0"`, size: 5000},
			want: requestError{Status: 413, Message: msgTruncatedBody},
		},
		{
			name: "MCP route, body not sent at all",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders(), size: 120},
			want: requestError{Status: 413, Message: msgTruncatedBody},
		},
		{
			name: "Mcp-Method header on an unmarked route, truncated",
			req:  checkRequest{headers: jsonHeaders("mcp-method", "tools/call"), body: `{"json`, size: 90},
			want: requestError{Status: 413, Message: msgTruncatedBody},
		},
		{
			name: "malformed JSON-RPC on an MCP route",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders(), body: readMCPFixture(t, "malformed.json")},
			want: requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name: "MCP route, body that is not JSON whatever its type",
			req:  checkRequest{ext: mcpRoute(), headers: map[string]string{"content-type": "text/plain"}, body: "call the refund tool"},
			want: requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name: "Mcp-Method header, malformed body",
			req:  checkRequest{headers: map[string]string{"mcp-method": "tools/call"}, body: "{"},
			want: requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name: "JSON content type, malformed object",
			req:  checkRequest{headers: jsonHeaders(), body: `{"a": 1,}`},
			want: requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name: "JSON content type, object with trailing data",
			req:  checkRequest{headers: jsonHeaders(), body: `{"a": 1}}`},
			want: requestError{Status: 400, Code: -32700, Message: "parse error"},
		},
		{
			name: "batch on an MCP route",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders(), body: readMCPFixture(t, "batch.json")},
			want: requestError{Status: 400, Code: -32600, Message: msgBatch},
		},
		{
			name: "Mcp-Method header disagrees with the body",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders("mcp-method", "tools/list"), body: toolsCall},
			want: requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: msgMethodMismatch},
		},
		{
			name: "Mcp-Name header disagrees with the body",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders("mcp-method", "tools/call", "mcp-name", "delete_repo"), body: toolsCall},
			want: requestError{Status: 400, Code: -32020, ID: json.RawMessage("7"), Message: msgNameMismatch},
		},
		{
			name: "Mcp-Method header without a body",
			req:  checkRequest{headers: map[string]string{"mcp-method": "tools/call"}},
			want: requestError{Status: 400, Code: -32020, Message: msgMethodMismatch},
		},
		{
			name: "duplicate method on an unmarked route with a JSON body",
			req:  checkRequest{headers: jsonHeaders(), body: readMCPFixture(t, "duplicate_method.json")},
			want: requestError{Status: 400, Code: -32600, Message: msgDuplicateKey},
		},
		{
			name: "arguments that cannot be canonicalized",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders(), body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1e400}}}`},
			want: requestError{Status: 400, Code: -32602, ID: json.RawMessage("1"), Message: msgArgumentsDigest},
		},
		{
			name: "path with a control character",
			req:  checkRequest{path: "/a\nb"},
			want: requestError{Status: 400, Message: msgInvalidPath},
		},
		{
			name: "path with a broken escape",
			req:  checkRequest{path: "/files/%zz"},
			want: requestError{Status: 400, Message: msgInvalidPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := describe(tt.req.build(), tt.limits)
			if d != nil {
				t.Errorf("description returned with a refusal: %+v", d)
			}
			wantRefusal(t, err, tt.want)
		})
	}
}

func TestDescribeHeaderLimitBoundary(t *testing.T) {
	// Names and values: "x-a" + value + "x-b" + "vv". 65536 passes, 65537 does not.
	at := checkRequest{method: "GET", headers: map[string]string{"x-a": strings.Repeat("v", 65536-3-3-2), "x-b": "vv"}}
	if _, err := describe(at.build(), Limits{}); err != nil {
		t.Fatalf("exactly 64 KiB of headers: %v", err)
	}
	over := checkRequest{method: "GET", headers: map[string]string{"x-a": strings.Repeat("v", 65536-3-3-2+1), "x-b": "vv"}}
	_, err := describe(over.build(), Limits{})
	wantRefusal(t, err, requestError{Status: 431, Message: "request headers exceed 65536 bytes"})
}

func TestDescribeImpossibleInput(t *testing.T) {
	for name, req := range map[string]*authv3.CheckRequest{
		"nil request":     nil,
		"no attributes":   {},
		"no request":      {Attributes: &authv3.AttributeContext{}},
		"no HTTP request": {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := describe(req, Limits{})
			if d != nil || !errors.Is(err, ErrNoAttributes) {
				t.Fatalf("describe = %v, %v; want ErrNoAttributes", d, err)
			}
			var re *requestError
			if errors.As(err, &re) {
				t.Fatalf("impossible input answered as a request refusal: %v", re)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	toolsCall := readMCPFixture(t, "tools_call.json")
	tests := []struct {
		name  string
		req   checkRequest
		check func(t *testing.T, d *description)
	}{
		{
			name: "plain GET",
			req:  checkRequest{method: "GET", path: "/v1/issues/42?state=open&label=a&label=b", headers: map[string]string{"accept": "*/*"}, id: "req-1"},
			check: func(t *testing.T, d *description) {
				if d.method != "GET" || d.host != "tools.internal" || d.path != "/v1/issues/42?state=open&label=a&label=b" || d.requestID != "req-1" {
					t.Errorf("method/host/path/id = %q %q %q %q", d.method, d.host, d.path, d.requestID)
				}
				if diff := cmp.Diff([]string{"v1", "issues", "42"}, d.input.ParsedPath); diff != "" {
					t.Errorf("parsed_path: %s", diff)
				}
				if diff := cmp.Diff(map[string][]string{"state": {"open"}, "label": {"a", "b"}}, d.input.ParsedQuery); diff != "" {
					t.Errorf("parsed_query: %s", diff)
				}
				if d.input.MCP != nil || d.input.ParsedBody != nil || d.input.TruncatedBody {
					t.Errorf("mcp/body/truncated = %v %v %v", d.input.MCP, d.input.ParsedBody, d.input.TruncatedBody)
				}
				if d.input.Resource == nil || d.input.Resource.Extensions == nil || len(d.input.Resource.Extensions) != 0 {
					t.Errorf("resource = %+v, want non-nil with an empty Extensions map", d.input.Resource)
				}
				if d.input.Identity != nil || d.input.Approval != nil {
					t.Error("identity or approval set by describe")
				}
				if d.input.Attributes != nil {
					t.Error("attributes rendered eagerly; describe sets AttributesFunc")
				}
				http := d.input.AttributesFunc()["request"].(map[string]any)["http"].(map[string]any)
				if http["method"] != "GET" {
					t.Errorf("attributes.request.http.method = %v", http["method"])
				}
			},
		},
		{
			name: "request id from x-request-id when Envoy sends no id",
			req:  checkRequest{method: "GET", headers: map[string]string{"x-request-id": "rid-9"}},
			check: func(t *testing.T, d *description) {
				if d.requestID != "rid-9" {
					t.Errorf("requestID = %q", d.requestID)
				}
			},
		},
		{
			name: "route context",
			req:  checkRequest{method: "GET", ext: map[string]string{"resource": "https://tickets.internal", "tenant": "tenant-a", "sensitivity": "high", "token_profile": "txn_token", "mcp": "false", "team": "billing"}},
			check: func(t *testing.T, d *description) {
				want := &policies.Resource{ID: "https://tickets.internal", Tenant: "tenant-a", Sensitivity: "high",
					Extensions: map[string]string{"resource": "https://tickets.internal", "tenant": "tenant-a", "sensitivity": "high", "token_profile": "txn_token", "mcp": "false", "team": "billing"}}
				if diff := cmp.Diff(want, d.input.Resource); diff != "" {
					t.Errorf("resource: %s", diff)
				}
				if d.profile != "txn_token" || d.mcpRoute {
					t.Errorf("profile %q, mcpRoute %v", d.profile, d.mcpRoute)
				}
			},
		},
		{
			name: "SPIFFE principal",
			req:  checkRequest{method: "GET", principal: "spiffe://example.org/agent/bot"},
			check: func(t *testing.T, d *description) {
				if d.spiffeID != "spiffe://example.org/agent/bot" {
					t.Errorf("spiffeID = %q", d.spiffeID)
				}
			},
		},
		{
			name: "principal that is not a SPIFFE ID",
			req:  checkRequest{method: "GET", principal: "CN=bot,O=example"},
			check: func(t *testing.T, d *description) {
				if d.spiffeID != "" {
					t.Errorf("spiffeID = %q", d.spiffeID)
				}
			},
		},
		{
			name: "header_map wins, repeated values joined, raw values read",
			req: checkRequest{
				method:  "GET",
				headers: map[string]string{"x-old": "1"},
				headerMap: []*corev3.HeaderValue{
					{Key: "accept", Value: "text/html"},
					{Key: "Accept", RawValue: []byte("application/json")},
					{Key: "authorization", RawValue: []byte("Bearer t0k")},
				},
			},
			check: func(t *testing.T, d *description) {
				want := map[string]string{"accept": "text/html,application/json", "authorization": "Bearer t0k"}
				if diff := cmp.Diff(want, d.headers); diff != "" {
					t.Errorf("headers: %s", diff)
				}
				if d.bearer != "t0k" {
					t.Errorf("bearer = %q", d.bearer)
				}
			},
		},
		{
			name: "truncated by the partial-body header, route not MCP",
			req:  checkRequest{headers: jsonHeaders("x-envoy-auth-partial-body", "true"), body: `{"a":1}`},
			check: func(t *testing.T, d *description) {
				if !d.input.TruncatedBody || d.input.ParsedBody != nil || d.input.MCP != nil {
					t.Errorf("truncated %v, parsed %v, mcp %v", d.input.TruncatedBody, d.input.ParsedBody, d.input.MCP)
				}
			},
		},
		{
			name: "truncated by size, route not MCP",
			req:  checkRequest{headers: jsonHeaders(), body: `{"a":1}`, size: 100},
			check: func(t *testing.T, d *description) {
				if !d.input.TruncatedBody || d.input.ParsedBody != nil {
					t.Errorf("truncated %v, parsed %v", d.input.TruncatedBody, d.input.ParsedBody)
				}
			},
		},
		{
			name: "size equal to the body is complete",
			req:  checkRequest{headers: jsonHeaders("x-envoy-auth-partial-body", "false"), body: `{"a":1}`, size: 7},
			check: func(t *testing.T, d *description) {
				if d.input.TruncatedBody {
					t.Error("complete body reported truncated")
				}
				if diff := cmp.Diff(map[string]any{"a": json.Number("1")}, d.input.ParsedBody); diff != "" {
					t.Errorf("parsed_body: %s", diff)
				}
			},
		},
		{
			name: "size -1 (unknown) is not truncation",
			req:  checkRequest{headers: jsonHeaders(), body: `[1]`, size: -1},
			check: func(t *testing.T, d *description) {
				if d.input.TruncatedBody {
					t.Error("truncated")
				}
			},
		},
		{
			name: "+json content type is parsed",
			req:  checkRequest{headers: map[string]string{"content-type": "application/merge-patch+json; charset=utf-8"}, body: `{"n": 1.50}`},
			check: func(t *testing.T, d *description) {
				if diff := cmp.Diff(map[string]any{"n": json.Number("1.50")}, d.input.ParsedBody); diff != "" {
					t.Errorf("parsed_body: %s", diff)
				}
			},
		},
		{
			name: "JSON content type, malformed array is left unparsed",
			req:  checkRequest{headers: jsonHeaders(), body: `[1,`},
			check: func(t *testing.T, d *description) {
				if d.input.ParsedBody != nil {
					t.Errorf("parsed_body = %v", d.input.ParsedBody)
				}
			},
		},
		{
			name: "other content types are not parsed",
			req:  checkRequest{headers: map[string]string{"content-type": "text/plain"}, body: `{"a":1}`},
			check: func(t *testing.T, d *description) {
				if d.input.ParsedBody != nil {
					t.Errorf("parsed_body = %v", d.input.ParsedBody)
				}
			},
		},
		{
			name: "raw_body is preferred to body",
			req:  checkRequest{headers: jsonHeaders(), rawBody: []byte(`{"from":"raw"}`), body: `{"from":"string"}`},
			check: func(t *testing.T, d *description) {
				if diff := cmp.Diff(map[string]any{"from": "raw"}, d.input.ParsedBody); diff != "" {
					t.Errorf("parsed_body: %s", diff)
				}
			},
		},
		{
			name: "MCP tools/call",
			req:  checkRequest{ext: mcpRoute(), headers: jsonHeaders("mcp-method", "tools/call", "mcp-name", "search_issues", "authorization", "Bearer abc.def.ghi"), body: toolsCall},
			check: func(t *testing.T, d *description) {
				want := &policies.MCP{Method: "tools/call", Name: "search_issues", Arguments: map[string]any{
					"q": "bug", "limit": json.Number("10"), "labels": []any{"p1", "ui"}, "filter": map[string]any{"state": "open"},
				}}
				if diff := cmp.Diff(want, d.input.MCP); diff != "" {
					t.Errorf("mcp: %s", diff)
				}
				if string(d.rpcID) != "7" {
					t.Errorf("rpcID = %s", d.rpcID)
				}
				// sha256 of {"filter":{"state":"open"},"labels":["p1","ui"],"limit":10,"q":"bug"}
				if d.argumentsDigest != canonicalDigest(`{"filter":{"state":"open"},"labels":["p1","ui"],"limit":10,"q":"bug"}`) {
					t.Errorf("argumentsDigest = %s", d.argumentsDigest)
				}
				if d.bearer != "abc.def.ghi" || !d.hasAuthorizationHeader {
					t.Errorf("bearer %q, has %v", d.bearer, d.hasAuthorizationHeader)
				}
				body, ok := d.input.ParsedBody.(map[string]any)
				if !ok || body["method"] != "tools/call" {
					t.Errorf("parsed_body = %v", d.input.ParsedBody)
				}
			},
		},
		{
			name: "MCP route, GET without a body is not an MCP call",
			req:  checkRequest{method: "GET", ext: mcpRoute(), headers: map[string]string{"accept": "text/event-stream"}},
			check: func(t *testing.T, d *description) {
				if d.input.MCP != nil || d.input.ParsedBody != nil || d.argumentsDigest != "" {
					t.Errorf("mcp %v, parsed %v", d.input.MCP, d.input.ParsedBody)
				}
			},
		},
		{
			name: "JSON-RPC body on a route not marked MCP is still described as MCP",
			req:  checkRequest{headers: jsonHeaders(), body: readMCPFixture(t, "resources_read.json")},
			check: func(t *testing.T, d *description) {
				if diff := cmp.Diff(&policies.MCP{Method: "resources/read", Name: "file:///srv/reports/q3.pdf"}, d.input.MCP); diff != "" {
					t.Errorf("mcp: %s", diff)
				}
				if d.argumentsDigest != "" {
					t.Errorf("argumentsDigest = %q for a call without arguments", d.argumentsDigest)
				}
			},
		},
		{
			name: "MCP notification",
			req:  checkRequest{ext: mcpRoute(), body: readMCPFixture(t, "notification.json")},
			check: func(t *testing.T, d *description) {
				if d.input.MCP == nil || d.input.MCP.Method != "notifications/initialized" || d.rpcID != nil {
					t.Errorf("mcp %+v, id %s", d.input.MCP, d.rpcID)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := describe(tt.req.build(), Limits{})
			if err != nil {
				t.Fatalf("describe: %v", err)
			}
			tt.check(t, d)
		})
	}
}

// TestDescribeHeadersLeavesTheBody: the header phase refuses what the
// headers alone show, and reads nothing of the body, so that a caller
// whose credential does not verify is answered before the body is parsed.
func TestDescribeHeadersLeavesTheBody(t *testing.T) {
	for name, req := range map[string]checkRequest{
		"malformed JSON-RPC":   {ext: mcpRoute(), headers: jsonHeaders("authorization", "Bearer x"), body: `{"jsonrpc":"2.0",`},
		"body over the limit":  {headers: jsonHeaders(), body: strings.Repeat(" ", 1<<20+1)},
		"truncated MCP body":   {ext: mcpRoute(), headers: jsonHeaders(), body: `{"json`, size: 90},
		"batch":                {ext: mcpRoute(), headers: jsonHeaders(), body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`},
		"header/body mismatch": {ext: mcpRoute(), headers: jsonHeaders("mcp-method", "tools/list"), body: readMCPFixture(t, "tools_call.json")},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := describeHeaders(req.build(), Limits{})
			if err != nil {
				t.Fatalf("describeHeaders: %v", err)
			}
			if d.input.ParsedBody != nil || d.input.MCP != nil || d.input.TruncatedBody || d.rpcID != nil || d.argumentsDigest != "" {
				t.Errorf("the header phase read the body: %+v", d.input)
			}
			if err := d.describeBody(Limits{}); err == nil {
				t.Error("describeBody accepted the body")
			}
		})
	}
	_, err := describeHeaders(checkRequest{headers: map[string]string{"x-big": strings.Repeat("a", 64<<10)}, body: "{"}.build(), Limits{})
	wantRefusal(t, err, requestError{Status: 431, Message: "request headers exceed 65536 bytes"})
	_, err = describeHeaders(checkRequest{path: "/files/%zz", body: "{"}.build(), Limits{})
	wantRefusal(t, err, requestError{Status: 400, Message: msgInvalidPath})
}

// TestDescribeAttributesOnDemand: input.attributes is rendered only when
// asked for, and is the redacted rendering.
func TestDescribeAttributesOnDemand(t *testing.T) {
	req := loadCheckRequest(t, "mcp_tools_call.json")
	d, err := describe(req, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d.input.Attributes != nil || d.input.AttributesFunc == nil {
		t.Fatalf("Attributes %v, AttributesFunc set %v", d.input.Attributes, d.input.AttributesFunc != nil)
	}
	want := attributesMap(req.GetAttributes())
	redactCredentials(want)
	if diff := cmp.Diff(want, d.input.AttributesFunc()); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, d.input.Value()["attributes"]); diff != "" {
		t.Errorf("input.attributes (-want +got):\n%s", diff)
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":          "abc",
		"bearer abc":          "abc",
		"BEARER   abc  ":      "abc",
		"  Bearer\tabc":       "abc",
		"Bearerabc":           "",
		"Bearer":              "",
		"Bearer ":             "",
		"Basic dXNlcjpwYXNz":  "",
		"DPoP abc":            "",
		"":                    "",
		"Bearer a.b.c, other": "a.b.c, other",
	} {
		if got := bearerToken(in); got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeAuthorizationHeader(t *testing.T) {
	d, err := describe(checkRequest{method: "GET", headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz"}}.build(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.hasAuthorizationHeader || d.bearer != "" {
		t.Errorf("Basic: has %v, bearer %q", d.hasAuthorizationHeader, d.bearer)
	}
	d, err = describe(checkRequest{method: "GET"}.build(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d.hasAuthorizationHeader || d.bearer != "" {
		t.Errorf("none: has %v, bearer %q", d.hasAuthorizationHeader, d.bearer)
	}
}

// opaParsedPathAndQuery is opa-envoy-plugin's computation, kept here to
// prove parsePathAndQuery agrees with it.
func opaParsedPathAndQuery(path string) ([]string, map[string][]string, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	return strings.Split(strings.TrimLeft(u.Path, "/"), "/"), map[string][]string(u.Query()), nil
}

func TestParsePathAndQuery(t *testing.T) {
	tests := []struct {
		path      string
		wantPath  []string
		wantQuery map[string][]string
		// differsFromOPA marks the one deliberate difference: "//x" is a
		// path, not an authority.
		differsFromOPA bool
	}{
		{path: "", wantPath: []string{""}, wantQuery: map[string][]string{}},
		{path: "/", wantPath: []string{""}, wantQuery: map[string][]string{}},
		{path: "/mcp", wantPath: []string{"mcp"}, wantQuery: map[string][]string{}},
		{path: "/a/b/", wantPath: []string{"a", "b", ""}, wantQuery: map[string][]string{}},
		{path: "/a//b", wantPath: []string{"a", "", "b"}, wantQuery: map[string][]string{}},
		{path: "/people/J%C3%BCrgen%20M", wantPath: []string{"people", "Jürgen M"}, wantQuery: map[string][]string{}},
		{path: "/files/a%2Fb", wantPath: []string{"files", "a", "b"}, wantQuery: map[string][]string{}},
		{path: "/a+b", wantPath: []string{"a+b"}, wantQuery: map[string][]string{}},
		{path: "/s?q=a+b&q=%26&empty=&flag", wantPath: []string{"s"}, wantQuery: map[string][]string{"q": {"a b", "&"}, "empty": {""}, "flag": {""}}},
		{path: "/s?a=1;b=2&c=3", wantPath: []string{"s"}, wantQuery: map[string][]string{"c": {"3"}}},
		{path: "/s?bad=%zz&ok=1", wantPath: []string{"s"}, wantQuery: map[string][]string{"ok": {"1"}}},
		{path: "/x#frag?y=1", wantPath: []string{"x"}, wantQuery: map[string][]string{}},
		{path: "/x?y=1#frag", wantPath: []string{"x"}, wantQuery: map[string][]string{"y": {"1"}}},
		{path: "*", wantPath: []string{"*"}, wantQuery: map[string][]string{}},
		{path: "//admin/x", wantPath: []string{"admin", "x"}, wantQuery: map[string][]string{}, differsFromOPA: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			gotPath, gotQuery, err := parsePathAndQuery(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantPath, gotPath); diff != "" {
				t.Errorf("path: %s", diff)
			}
			if diff := cmp.Diff(tt.wantQuery, gotQuery); diff != "" {
				t.Errorf("query: %s", diff)
			}
			if tt.differsFromOPA {
				return
			}
			opaPath, opaQuery, err := opaParsedPathAndQuery(tt.path)
			if err != nil {
				t.Fatalf("opa-envoy-plugin's parse: %v", err)
			}
			if diff := cmp.Diff(opaPath, gotPath); diff != "" {
				t.Errorf("differs from opa-envoy-plugin's parsed_path: %s", diff)
			}
			if diff := cmp.Diff(opaQuery, gotQuery); diff != "" {
				t.Errorf("differs from opa-envoy-plugin's parsed_query: %s", diff)
			}
		})
	}
	for _, bad := range []string{"/%zz", "/a%", "/a\x00b", "/a\x7f"} {
		if _, _, err := parsePathAndQuery(bad); err == nil {
			t.Errorf("parsePathAndQuery(%q) accepted", bad)
		}
		if _, _, err := opaParsedPathAndQuery(bad); err == nil {
			t.Errorf("opa-envoy-plugin accepts %q, writ refuses it", bad)
		}
	}
}

func TestRequestErrorMessage(t *testing.T) {
	err := error(&requestError{Status: 400, Code: -32020, Message: msgMethodMismatch})
	if got, want := err.Error(), "extauthz: request refused: 400 (JSON-RPC -32020): Mcp-Method header does not match the JSON-RPC body"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = &requestError{Status: 431, Message: "request headers exceed 65536 bytes"}
	if got, want := err.Error(), "extauthz: request refused: 431: request headers exceed 65536 bytes"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func BenchmarkDescribe(b *testing.B) {
	req := loadCheckRequest(b, "mcp_tools_call.json")
	if _, err := describe(req, Limits{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := describe(req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
