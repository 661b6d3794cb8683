package extauthz

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/writ-dev/writ/policies"
)

// envoyRequest is the request Envoy's HTTP service mode sends writ for an
// agent's request, with path_prefix "/authz".
func envoyRequest(method, target, body string, headers map[string][]string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

func TestCheckRequestFromHTTP(t *testing.T) {
	r := envoyRequest("GET", "http://tools.internal/authz/v1/issues?state=open", "", map[string][]string{
		"Authorization":           {"Bearer t0k"},
		"Accept":                  {"text/html", "application/json"},
		"X-Request-Id":            {"rid-1"},
		"X-Writ-Resource":         {"https://issues.internal"},
		"X-Writ-Tenant":           {"tenant-a"},
		"X-Writ-Sensitivity":      {"low"},
		"X-Writ-Token-Profile":    {"txn_token"},
		"X-Writ-Mcp":              {"false"},
		"X-Writ-Source-Principal": {"spiffe://example.org/bot"},
	})
	got := checkRequestFromHTTP(r, "/authz", nil, false)
	want := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: "spiffe://example.org/bot"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:     "rid-1",
			Method: "GET",
			Path:   "/v1/issues?state=open",
			Host:   "tools.internal",
			Headers: map[string]string{
				":method":       "GET",
				":path":         "/v1/issues?state=open",
				":authority":    "tools.internal",
				"authorization": "Bearer t0k",
				"accept":        "text/html,application/json",
				"x-request-id":  "rid-1",
			},
		}},
		ContextExtensions: map[string]string{
			"resource": "https://issues.internal", "tenant": "tenant-a", "sensitivity": "low",
			"token_profile": "txn_token", "mcp": "false",
		},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("CheckRequest (-want +got):\n%s", diff)
	}
	if err := got.ValidateAll(); err != nil {
		t.Errorf("Envoy's validation: %v", err)
	}
}

func TestCheckRequestFromHTTPPaths(t *testing.T) {
	for _, tt := range []struct{ target, prefix, want string }{
		{"/authz/mcp", "/authz", "/mcp"},
		{"/authz", "/authz", "/"},
		{"/authz?x=1", "/authz", "/?x=1"},
		{"/mcp", "", "/mcp"},
		{"/other/mcp", "/authz", "/other/mcp"},
		{"/authz/a%2Fb?q=%20", "/authz", "/a%2Fb?q=%20"},
	} {
		r := envoyRequest("GET", tt.target, "", nil)
		got := checkRequestFromHTTP(r, tt.prefix, nil, false).GetAttributes().GetRequest().GetHttp()
		if got.GetPath() != tt.want || got.GetHeaders()[":path"] != tt.want {
			t.Errorf("%s with prefix %q: path %q, :path %q; want %q", tt.target, tt.prefix, got.GetPath(), got.GetHeaders()[":path"], tt.want)
		}
	}
}

func TestCheckRequestFromHTTPBodies(t *testing.T) {
	body := readMCPFixture(t, "tools_call.json")
	t.Run("UTF-8 body travels as body", func(t *testing.T) {
		r := envoyRequest("POST", "/mcp", body, nil)
		h := checkRequestFromHTTP(r, "", []byte(body), false).GetAttributes().GetRequest().GetHttp()
		if h.GetBody() != body || h.GetRawBody() != nil || h.GetSize() != int64(len(body)) {
			t.Errorf("body %q raw %q size %d", h.GetBody(), h.GetRawBody(), h.GetSize())
		}
		if _, ok := h.GetHeaders()["x-envoy-auth-partial-body"]; ok {
			t.Error("partial-body header on a complete body")
		}
	})
	t.Run("other bytes travel as raw_body", func(t *testing.T) {
		raw := []byte{0xff, 0xfe, 0x00}
		h := checkRequestFromHTTP(envoyRequest("POST", "/up", "", nil), "", raw, false).GetAttributes().GetRequest().GetHttp()
		if h.GetBody() != "" || string(h.GetRawBody()) != string(raw) {
			t.Errorf("body %q raw %q", h.GetBody(), h.GetRawBody())
		}
	})
	t.Run("truncated", func(t *testing.T) {
		r := envoyRequest("POST", "/mcp", body, map[string][]string{"X-Envoy-Auth-Partial-Body": {"false"}})
		h := checkRequestFromHTTP(r, "", []byte(body[:20]), true).GetAttributes().GetRequest().GetHttp()
		if h.GetHeaders()["x-envoy-auth-partial-body"] != "true" || h.GetSize() != -1 {
			t.Errorf("partial-body header %q, size %d", h.GetHeaders()["x-envoy-auth-partial-body"], h.GetSize())
		}
	})
	t.Run("header values that are not UTF-8", func(t *testing.T) {
		r := envoyRequest("GET", "/", "", map[string][]string{"X-Odd": {"a\xffb"}})
		req := checkRequestFromHTTP(r, "", nil, false)
		if got := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-odd"]; got != "a\ufffdb" {
			t.Errorf("x-odd = %q", got)
		}
		if _, err := viaProtojson(req.GetAttributes()); err != nil {
			t.Errorf("CheckRequest is not valid protobuf text: %v", err)
		}
	})
}

func TestWriteHTTPResponseAllow(t *testing.T) {
	resp := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				{Header: &corev3.HeaderValue{Key: "authorization", Value: "Bearer minted"}},
				{Header: &corev3.HeaderValue{Key: "x-writ-decision-id", Value: "d-1"}},
				{Header: &corev3.HeaderValue{Key: "x-tag", Value: "a"}, Append: wrapperspb.Bool(true)},
				{Header: &corev3.HeaderValue{Key: "x-tag", Value: "b"}, Append: wrapperspb.Bool(true)},
				{Header: &corev3.HeaderValue{Key: "x-raw", RawValue: []byte("raw")}},
				{Header: &corev3.HeaderValue{Key: "", Value: "dropped"}},
			},
			HeadersToRemove:      []string{"authorization-agent", "txn-token"},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ratelimit", Value: "10"}}},
		}},
	}
	w := httptest.NewRecorder()
	writeHTTPResponse(w, resp)
	res := w.Result()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for k, want := range map[string][]string{
		"Authorization":                  {"Bearer minted"},
		"X-Writ-Decision-Id":             {"d-1"},
		"X-Tag":                          {"a", "b"},
		"X-Raw":                          {"raw"},
		"X-Envoy-Auth-Headers-To-Remove": {"authorization-agent,txn-token"},
		"X-Ratelimit":                    {"10"},
	} {
		if diff := cmp.Diff(want, res.Header.Values(k)); diff != "" {
			t.Errorf("%s: %s", k, diff)
		}
	}
	if b, _ := io.ReadAll(res.Body); len(b) != 0 {
		t.Errorf("allow has a body: %q", b)
	}
}

func TestWriteHTTPResponseDeny(t *testing.T) {
	denied := func(code typev3.StatusCode, body string, headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: 7},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: code}, Headers: headers, Body: body,
			}},
		}
	}
	tests := []struct {
		name       string
		resp       *authv3.CheckResponse
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{
			name: "401 with a challenge",
			resp: denied(401, `{"error":"invalid_token"}`,
				&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: `Bearer error="invalid_token"`}},
				&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}}),
			wantStatus: 401,
			wantBody:   `{"error":"invalid_token"}`,
			wantHeader: map[string]string{"Www-Authenticate": `Bearer error="invalid_token"`, "Content-Type": "application/json"},
		},
		{
			name:       "status unset is 403",
			resp:       &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Body: "no"}}},
			wantStatus: 403,
			wantBody:   "no",
			wantHeader: map[string]string{"Content-Type": ""},
		},
		{
			name:       "a denial that says 200 is still a denial",
			resp:       denied(200, "x"),
			wantStatus: 403,
			wantBody:   "x",
		},
		{
			name:       "a redirect is kept",
			resp:       denied(302, "", &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "location", Value: "https://login"}}),
			wantStatus: 302,
			wantHeader: map[string]string{"Location": "https://login"},
		},
		{
			name:       "413 from describe",
			resp:       denied(413, "too large"),
			wantStatus: 413,
			wantBody:   "too large",
		},
		{
			name:       "denied status with an OK body kind",
			resp:       &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}},
			wantStatus: 403,
		},
		{
			name:       "nil response",
			resp:       nil,
			wantStatus: 403,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeHTTPResponse(w, tt.resp)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if res.Header.Get("X-Envoy-Auth-Headers-To-Remove") != "" {
				t.Error("a denial lists headers to remove")
			}
		})
	}
}

// TestHTTPModeRoundTrip drives the translation both ways as the HTTP
// service does: Envoy's request in, describe, a CheckResponse out.
func TestHTTPModeRoundTrip(t *testing.T) {
	body := readMCPFixture(t, "tools_call.json")
	handler := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d, err := describe(checkRequestFromHTTP(r, "/authz", b, false), Limits{})
		if err != nil {
			re := err.(*requestError)
			writeHTTPResponse(w, &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: 3},
				HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode(re.Status)}, Body: re.Message,
				}},
			})
			return
		}
		// A stand-in decision: allow search_issues for this resource.
		if d.input.MCP == nil || d.input.MCP.Name != "search_issues" || d.input.Resource.ID != "mcp://tools" {
			writeHTTPResponse(w, &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7}})
			return
		}
		writeHTTPResponse(w, &authv3.CheckResponse{
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-arguments-digest", Value: d.argumentsDigest}}},
				HeadersToRemove: []string{"authorization"},
			}},
		})
	}
	route := map[string][]string{"X-Writ-Resource": {"mcp://tools"}, "X-Writ-Mcp": {"true"}, "Content-Type": {"application/json"}}

	w := httptest.NewRecorder()
	handler(w, envoyRequest("POST", "/authz/mcp", body, merge(route, map[string][]string{"Mcp-Method": {"tools/call"}, "Authorization": {"Bearer a"}})))
	if w.Code != 200 || w.Header().Get("X-Envoy-Auth-Headers-To-Remove") != "authorization" ||
		w.Header().Get("X-Arguments-Digest") != canonicalDigest(`{"filter":{"state":"open"},"labels":["p1","ui"],"limit":10,"q":"bug"}`) {
		t.Errorf("allowed call: %d %v", w.Code, w.Header())
	}

	w = httptest.NewRecorder()
	handler(w, envoyRequest("POST", "/authz/mcp", body, merge(route, map[string][]string{"Mcp-Method": {"tools/list"}})))
	if w.Code != 400 || w.Body.String() != msgMethodMismatch {
		t.Errorf("header mismatch: %d %q", w.Code, w.Body.String())
	}

	w = httptest.NewRecorder()
	other := strings.Replace(body, "search_issues", "delete_repo", 1)
	handler(w, envoyRequest("POST", "/authz/mcp", other, route))
	if w.Code != 403 {
		t.Errorf("denied call: %d", w.Code)
	}

	// A client cannot smuggle route context: Envoy's headers_to_add replaces
	// its value, and describe reads it only from context_extensions.
	r := envoyRequest("POST", "/authz/mcp", body, merge(route, nil))
	d, err := describe(checkRequestFromHTTP(r, "/authz", []byte(body), false), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.headers["x-writ-resource"]; ok {
		t.Error("route header left among the request headers")
	}
	want := &policies.Resource{ID: "mcp://tools", Extensions: map[string]string{"resource": "mcp://tools", "mcp": "true"}}
	if diff := cmp.Diff(want, d.input.Resource); diff != "" {
		t.Errorf("resource: %s", diff)
	}
}

func merge(a, b map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
