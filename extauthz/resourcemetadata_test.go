package extauthz_test

import (
	"context"
	"errors"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/test/writtest"
)

// TestChallengeNamesResourceMetadata: over a real gRPC connection, a 401
// for a call to resource A names A's metadata URL, one for B names B's,
// and any other route the global URL.
func TestChallengeNamesResourceMetadata(t *testing.T) {
	const (
		resA   = "https://mcp.example.com/mcp"
		resB   = "https://tickets.example.com/api"
		urlA   = "https://writ.test/.well-known/oauth-protected-resource/mcp.example.com/mcp"
		urlB   = "https://writ.test/.well-known/oauth-protected-resource/tickets.example.com/api"
		global = "https://writ.test/.well-known/oauth-protected-resource"
	)
	r := newRig(t, rigOptions{
		engine: fixedDecision{dec: policies.Decision{Allow: false, Reason: "no"}},
		cfg: extauthz.Config{
			ResourceMetadata:     global,
			ResourceMetadataURLs: map[string]string{resA: urlA, resB: urlB},
		},
	})
	client := dialCheckGRPC(t, r.srv)

	invalid := `Bearer error="invalid_token", error_description="the token is malformed", resource_metadata="`
	tests := []struct {
		name     string
		resource string // the route's context resource; "" for none
		bearer   string
		basic    bool
		want     string
	}{
		{"A without a credential", resA, "", false, `Bearer resource_metadata="` + urlA + `"`},
		{"B without a credential", resB, "", false, `Bearer resource_metadata="` + urlB + `"`},
		{"A with a bad token", resA, "garbage", false, invalid + urlA + `"`},
		{"B with a bad token", resB, "garbage", false, invalid + urlB + `"`},
		{"A with Basic", resA, "", true, `Bearer error="invalid_request", error_description="the Authorization header must use the Bearer scheme", resource_metadata="` + urlA + `"`},
		{"unknown resource", "https://other.example.com/x", "garbage", false, invalid + global + `"`},
		{"route without resource", "", "", false, `Bearer resource_metadata="` + global + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := map[string]string{"tenant": "tenant-a", "mcp": "true"}
			if tt.resource != "" {
				ext["resource"] = tt.resource
			}
			req := writtest.ToolCall("search", nil, tt.bearer, ext)
			if tt.basic {
				req.Attributes.Request.Http.Headers["authorization"] = "Basic YWxpY2U6cHc="
			}
			resp, err := client.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if code := resp.GetDeniedResponse().GetStatus().GetCode(); code != 401 {
				t.Fatalf("status %d, want 401", code)
			}
			if got := writtest.Header(resp, "www-authenticate"); got != tt.want {
				t.Errorf("www-authenticate = %s\nwant %s", got, tt.want)
			}
		})
	}

	// A signed-in caller refused by policy gets a 403 and no challenge.
	req := writtest.ToolCall("search", nil, r.token(t, "user-7", "agent-3"), map[string]string{"resource": resA, "tenant": "tenant-a", "mcp": "true"})
	resp, err := client.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.GetDeniedResponse().GetStatus().GetCode(); code != 403 {
		t.Errorf("status %d, want 403", code)
	}
	if got := writtest.Header(resp, "www-authenticate"); got != "" {
		t.Errorf("403 carries a challenge: %s", got)
	}
}

// TestChallengeWithoutResourceMetadata: with nothing configured the
// challenge is bare, as before.
func TestChallengeWithoutResourceMetadata(t *testing.T) {
	r := newRig(t, rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: false}}})
	resp, err := r.srv.Check(context.Background(), writtest.ToolCall("search", nil, "", map[string]string{"resource": "https://mcp.example.com/mcp", "mcp": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := writtest.Header(resp, "www-authenticate"); got != "Bearer" {
		t.Errorf("www-authenticate = %q, want Bearer", got)
	}
}

func dialCheckGRPC(t *testing.T, srv *extauthz.Server) authv3.AuthorizationClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.RegisterGRPC(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(ln)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-served
	})
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func TestConfigValidateResourceMetadataURLs(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://writ.test/.well-known/oauth-protected-resource/mcp.example.com/mcp": true,
		"http://127.0.0.1:8080/.well-known/oauth-protected-resource/x":               true,
		"":                          false,
		"/relative":                 false,
		"ftp://writ.test/x":         false,
		"https://writ.test/x\r\nX:": false,
	} {
		err := extauthz.Config{ResourceMetadataURLs: map[string]string{"https://mcp.example.com/mcp": u}}.Validate()
		if ok != (err == nil) || (err != nil && !errors.Is(err, extauthz.ErrConfig)) {
			t.Errorf("Validate with %q = %v, want ok %v", u, err, ok)
		}
	}
}
