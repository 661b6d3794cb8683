package oauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/oauth"
)

var updateDiscovery = flag.Bool("update-discovery", false, "rewrite testdata/discovery golden files")

const (
	discoIssuer = "https://writ.example.com"
	resMCP      = "https://mcp.example.com/mcp"
	resTickets  = "https://tickets.example.com:8443/api/v2"
)

// cibaExtra has the shape of (*CIBA).Metadata().
func cibaExtra() map[string]any {
	return map[string]any{
		"issuer":                              discoIssuer,
		"jwks_uri":                            discoIssuer + "/.well-known/jwks.json",
		"token_endpoint":                      discoIssuer + "/token",
		"backchannel_authentication_endpoint": discoIssuer + "/bc-authorize",
		"backchannel_token_delivery_modes_supported":       []string{"poll", "ping"},
		"backchannel_user_code_parameter_supported":        false,
		"grant_types_supported":                            []string{"urn:openid:params:grant-type:ciba"},
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt", "client_secret_basic"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"ES256", "RS256"},
		"scopes_supported":                                 []string{"openid"},
	}
}

var discoveryConfigs = []struct {
	name string
	cfg  oauth.DiscoveryConfig
}{
	{"minimal", oauth.DiscoveryConfig{
		Issuer:          discoIssuer,
		GrantTypes:      []string{"client_credentials"},
		AuthMethods:     []string{"private_key_jwt"},
		AuthSigningAlgs: []string{"ES256"},
	}},
	{"full", oauth.DiscoveryConfig{
		Issuer:            discoIssuer,
		Registration:      true,
		MetadataDocuments: true,
		Revocation:        true,
		Introspection:     true,
		GrantTypes:        []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		AuthMethods:       []string{"private_key_jwt", "client_secret_basic"},
		AuthSigningAlgs:   []string{"ES256", "RS256", "EdDSA"},
		Extra:             cibaExtra(),
		Resources: []oauth.Resource{
			{ID: resMCP, Name: "Example MCP", Scopes: []string{"tools.read", "tools.call"}},
			{ID: resTickets, Scopes: []string{"tickets.read", "tools.read"}},
		},
	}},
	{"ciba_only", oauth.DiscoveryConfig{
		Issuer: "http://127.0.0.1:8080",
		Extra: func() map[string]any {
			m := cibaExtra()
			for _, k := range []string{"issuer", "jwks_uri", "token_endpoint", "backchannel_authentication_endpoint"} {
				m[k] = strings.Replace(m[k].(string), discoIssuer, "http://127.0.0.1:8080", 1)
			}
			return m
		}(),
	}},
	{"registration_no_resources", oauth.DiscoveryConfig{
		Issuer:          discoIssuer,
		Registration:    true,
		Revocation:      true,
		GrantTypes:      []string{"client_credentials"},
		AuthMethods:     []string{"client_secret_basic"},
		ScopesSupported: []string{"agents.self"},
	}},
}

func serveDiscovery(t *testing.T, cfg oauth.DiscoveryConfig) (*oauth.Discovery, *httptest.Server) {
	t.Helper()
	d, err := oauth.NewDiscovery(cfg)
	if err != nil {
		t.Fatalf("NewDiscovery: %v", err)
	}
	mux := http.NewServeMux()
	d.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return d, srv
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// golden compares got (JSON) with testdata/discovery/name, indented.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "discovery", name)
	if *updateDiscovery {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run with -update-discovery)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// TestAuthorizationServerMetadata: both well-knowns serve one document,
// exactly the golden one, with the configured issuer.
func TestAuthorizationServerMetadata(t *testing.T) {
	for _, tt := range discoveryConfigs {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := serveDiscovery(t, tt.cfg)
			respA, a := get(t, srv.URL+"/.well-known/oauth-authorization-server")
			respB, b := get(t, srv.URL+"/.well-known/openid-configuration")
			for _, resp := range []*http.Response{respA, respB} {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
					t.Errorf("Cache-Control %q", cc)
				}
			}
			if !bytes.Equal(a, b) {
				t.Errorf("the two well-knowns differ:\n%s\n%s", a, b)
			}
			var m map[string]any
			if err := json.Unmarshal(a, &m); err != nil {
				t.Fatal(err)
			}
			if m["issuer"] != tt.cfg.Issuer {
				t.Errorf("issuer %v, want %q", m["issuer"], tt.cfg.Issuer)
			}
			golden(t, tt.name+".json", a)
		})
	}
}

// TestMetadataKeys: the fields each option adds, and those never listed.
func TestMetadataKeys(t *testing.T) {
	base := []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
		"response_types_supported", "grant_types_supported", "token_endpoint_auth_methods_supported",
		"token_endpoint_auth_signing_alg_values_supported"}
	tests := []struct {
		name string
		edit func(*oauth.DiscoveryConfig)
		add  []string
	}{
		{"nothing optional", func(*oauth.DiscoveryConfig) {}, nil},
		{"registration", func(c *oauth.DiscoveryConfig) { c.Registration = true }, []string{"registration_endpoint"}},
		{"metadata documents", func(c *oauth.DiscoveryConfig) { c.MetadataDocuments = true }, []string{"client_id_metadata_document_supported"}},
		{"revocation", func(c *oauth.DiscoveryConfig) { c.Revocation = true },
			[]string{"revocation_endpoint", "revocation_endpoint_auth_methods_supported",
				"revocation_endpoint_auth_signing_alg_values_supported"}},
		{"introspection", func(c *oauth.DiscoveryConfig) { c.Introspection = true },
			[]string{"introspection_endpoint", "introspection_endpoint_auth_methods_supported",
				"introspection_endpoint_auth_signing_alg_values_supported"}},
		{"resource scopes", func(c *oauth.DiscoveryConfig) {
			c.Resources = []oauth.Resource{{ID: resMCP, Scopes: []string{"tools.call"}}}
		}, []string{"scopes_supported"}},
		{"resource without scopes", func(c *oauth.DiscoveryConfig) {
			c.Resources = []oauth.Resource{{ID: resMCP}}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oauth.DiscoveryConfig{Issuer: discoIssuer, GrantTypes: []string{"client_credentials"},
				AuthMethods: []string{"private_key_jwt"}, AuthSigningAlgs: []string{"ES256"}}
			tt.edit(&cfg)
			d, err := oauth.NewDiscovery(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m := d.Metadata()
			var got []string
			for k := range m {
				got = append(got, k)
			}
			want := append(slices.Clone(base), tt.add...)
			slices.Sort(got)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if rt, ok := m["response_types_supported"].([]any); !ok || len(rt) != 0 {
				t.Errorf("response_types_supported = %#v, want []", m["response_types_supported"])
			}
		})
	}
}

// TestExtraMerge: lists are joined without repeats; a conflicting single
// value is refused.
func TestExtraMerge(t *testing.T) {
	d, err := oauth.NewDiscovery(discoveryConfigs[1].cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := d.Metadata()
	want := map[string][]any{
		"grant_types_supported":                 {"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "urn:openid:params:grant-type:ciba"},
		"token_endpoint_auth_methods_supported": {"private_key_jwt", "client_secret_basic"},
		"scopes_supported":                      {"tools.read", "tools.call", "tickets.read", "openid"},
	}
	for k, v := range want {
		if diff := cmp.Diff(v, m[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	cfg := discoveryConfigs[1].cfg
	cfg.Extra = map[string]any{"token_endpoint": "https://elsewhere.example.com/token"}
	if _, err := oauth.NewDiscovery(cfg); !errors.Is(err, oauth.ErrDiscoveryConfig) || !strings.Contains(err.Error(), "token_endpoint") {
		t.Errorf("conflicting extra field: %v, want ErrDiscoveryConfig naming token_endpoint", err)
	}
}

func TestNewDiscoveryRefuses(t *testing.T) {
	ok := oauth.DiscoveryConfig{Issuer: discoIssuer, GrantTypes: []string{"client_credentials"},
		AuthMethods: []string{"private_key_jwt"}, AuthSigningAlgs: []string{"ES256"}}
	tests := []struct {
		name string
		edit func(*oauth.DiscoveryConfig)
		want string
	}{
		{"no issuer", func(c *oauth.DiscoveryConfig) { c.Issuer = "" }, "no issuer"},
		{"relative issuer", func(c *oauth.DiscoveryConfig) { c.Issuer = "writ.example.com" }, "not an absolute URL"},
		{"http issuer", func(c *oauth.DiscoveryConfig) { c.Issuer = "http://writ.example.com" }, "must be https"},
		{"issuer with query", func(c *oauth.DiscoveryConfig) { c.Issuer = discoIssuer + "?a=b" }, "query or fragment"},
		{"issuer with fragment", func(c *oauth.DiscoveryConfig) { c.Issuer = discoIssuer + "#x" }, "query or fragment"},
		{"issuer with slash", func(c *oauth.DiscoveryConfig) { c.Issuer = discoIssuer + "/" }, "ends in a slash"},
		{"no grant types", func(c *oauth.DiscoveryConfig) { c.GrantTypes = nil }, "grant_types_supported must not be empty"},
		{"no auth methods", func(c *oauth.DiscoveryConfig) { c.AuthMethods = []string{""} }, "token_endpoint_auth_methods_supported must not be empty"},
		{"private_key_jwt without algorithms", func(c *oauth.DiscoveryConfig) { c.AuthSigningAlgs = nil }, "needs token_endpoint_auth_signing_alg_values_supported"},
		{"resource without id", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{Name: "x"}} }, "resource without id"},
		{"relative resource", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: "mcp://tools"}} }, "must be https"},
		{"resource without host", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: "/mcp"}} }, "not an absolute URL"},
		{"http resource", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: "http://mcp.example.com/mcp"}} }, "must be https"},
		{"resource with fragment", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: resMCP + "#a"}} }, "fragment"},
		{"resource with query", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: resMCP + "?a=b"}} }, "query"},
		{"resource with user", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: "https://u@mcp.example.com/mcp"}} }, "not an absolute URL"},
		{"resource with dots", func(c *oauth.DiscoveryConfig) {
			c.Resources = []oauth.Resource{{ID: "https://mcp.example.com/a/../mcp"}}
		}, "dot segments"},
		{"duplicate resource", func(c *oauth.DiscoveryConfig) { c.Resources = []oauth.Resource{{ID: resMCP}, {ID: resMCP}} }, "listed twice"},
		{"colliding resources", func(c *oauth.DiscoveryConfig) {
			c.Resources = []oauth.Resource{{ID: "https://mcp.example.com"}, {ID: "https://mcp.example.com/"}}
		}, "metadata address of another"},
		{"bad scope", func(c *oauth.DiscoveryConfig) {
			c.Resources = []oauth.Resource{{ID: resMCP, Scopes: []string{"two words"}}}
		}, "not a scope token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := oauth.NewDiscovery(cfg)
			if !errors.Is(err, oauth.ErrDiscoveryConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewDiscovery = %v, want ErrDiscoveryConfig with %q", err, tt.want)
			}
		})
	}
	// Loopback resources and issuers may be http.
	cfg := ok
	cfg.Issuer = "http://localhost:8080"
	cfg.Resources = []oauth.Resource{{ID: "http://127.0.0.1:9000/mcp"}, {ID: "http://[::1]:9000/mcp"}}
	if _, err := oauth.NewDiscovery(cfg); err != nil {
		t.Errorf("loopback http: %v", err)
	}
}

// TestProtectedResourceMetadata: each resource's document is at its
// ResourceMetadataURL; an unknown one is a 404.
func TestProtectedResourceMetadata(t *testing.T) {
	cfg := discoveryConfigs[1].cfg
	d, srv := serveDiscovery(t, cfg)
	urls := map[string]string{
		resMCP:     discoIssuer + "/.well-known/oauth-protected-resource/mcp.example.com/mcp",
		resTickets: discoIssuer + "/.well-known/oauth-protected-resource/tickets.example.com:8443/api/v2",
	}
	if diff := cmp.Diff(urls, d.ResourceMetadataURLs()); diff != "" {
		t.Errorf("ResourceMetadataURLs (-want +got):\n%s", diff)
	}
	for id, want := range map[string]string{
		resMCP:     "prm_mcp.json",
		resTickets: "prm_tickets.json",
	} {
		u := d.ResourceMetadataURL(id)
		if u != urls[id] {
			t.Errorf("ResourceMetadataURL(%q) = %q, want %q", id, u, urls[id])
		}
		resp, body := get(t, srv.URL+strings.TrimPrefix(u, discoIssuer))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", id, resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Errorf("Cache-Control %q", cc)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if m["resource"] != id {
			t.Errorf("resource = %v, want %q", m["resource"], id)
		}
		golden(t, want, body)
	}
	if got := d.ResourceMetadataURL("https://unknown.example.com/mcp"); got != "" {
		t.Errorf("ResourceMetadataURL(unknown) = %q, want empty", got)
	}
	for _, path := range []string{
		"/.well-known/oauth-protected-resource/unknown.example.com/mcp",
		"/.well-known/oauth-protected-resource/mcp.example.com",
		"/.well-known/oauth-protected-resource/mcp.example.com/mcp/more",
		"/.well-known/oauth-protected-resource/",
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || e.Error != "not_found" {
			t.Errorf("%s: body %s, want JSON error not_found", path, body)
		}
	}
}

func ExampleDiscovery_ResourceMetadataURL() {
	d, err := oauth.NewDiscovery(oauth.DiscoveryConfig{
		Issuer:            "https://writ.example.com",
		Registration:      true,
		MetadataDocuments: true,
		GrantTypes:        []string{"client_credentials"},
		AuthMethods:       []string{"private_key_jwt"},
		AuthSigningAlgs:   []string{"ES256"},
		Resources:         []oauth.Resource{{ID: "https://mcp.example.com/mcp", Name: "Example MCP", Scopes: []string{"tools.call"}}},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	d.Routes(mux) // the well-knowns, the resource's metadata, /authorize
	fmt.Println(d.ResourceMetadataURL("https://mcp.example.com/mcp"))
	fmt.Println(d.Metadata()["registration_endpoint"])
	// Output:
	// https://writ.example.com/.well-known/oauth-protected-resource/mcp.example.com/mcp
	// https://writ.example.com/register
}
