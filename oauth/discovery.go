package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/tokens"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// ErrDiscoveryConfig means a DiscoveryConfig cannot be used as given.
var ErrDiscoveryConfig = errors.New("oauth: invalid discovery configuration")

// Paths of the discovery documents, relative to the issuer.
const (
	PathAuthorizationServer = "/.well-known/oauth-authorization-server"
	PathOpenIDConfiguration = "/.well-known/openid-configuration"
	// PathProtectedResource is the prefix of every protected resource's
	// metadata: PathProtectedResource + "/" + host + path of its ID.
	PathProtectedResource = "/.well-known/oauth-protected-resource"
)

// metadataCacheControl lets clients and proxies reuse a discovery document
// briefly; a configuration change reaches them within five minutes.
const metadataCacheControl = "public, max-age=300"

// DiscoveryConfig says what writ serves, and so what its authorization
// server metadata (RFC 8414) and protected-resource metadata (RFC 9728)
// list. Nothing is listed that is not configured here.
type DiscoveryConfig struct {
	// Issuer is writ's issuer URL, exactly as tokens carry it: https (or
	// http on a loopback host), no query, fragment or trailing slash.
	// Endpoint URLs are Issuer + their path. Required.
	Issuer string
	// Registration lists registration_endpoint (Issuer + /register).
	Registration bool
	// MetadataDocuments lists client_id_metadata_document_supported: https
	// URLs are accepted as client_id.
	MetadataDocuments bool
	// Revocation and Introspection list revocation_endpoint (Issuer +
	// /revoke) and introspection_endpoint (Issuer + /introspect), each with
	// AuthMethods (and AuthSigningAlgs) as its authentication methods.
	Revocation, Introspection bool
	// GrantTypes are the grant types the token endpoint serves. With the
	// grant types in Extra, at least one.
	GrantTypes []string
	// AuthMethods are the client authentication methods of the token
	// endpoint (client_secret_basic, private_key_jwt). With those in
	// Extra, at least one.
	AuthMethods []string
	// AuthSigningAlgs are the algorithms accepted for private_key_jwt
	// client assertions.
	AuthSigningAlgs []string
	// ScopesSupported are scopes served beyond the resources' own.
	ScopesSupported []string
	// Extra are further metadata fields merged in, such as
	// (*CIBA).Metadata(). A list already present is joined with Extra's
	// (duplicates dropped); any other field already present must have the
	// same value.
	Extra map[string]any
	// Resources are the protected resources; each gets its metadata
	// document, and its scopes are listed in scopes_supported.
	Resources []Resource
}

// Resource is a protected resource (RFC 9728): what agents call through
// Envoy, named by the route's context `resource`, and the aud of tokens
// minted for it.
type Resource struct {
	// ID is the resource identifier: an absolute https URL (http only on a
	// loopback host) with no fragment or query.
	ID string `yaml:"id"`
	// Name is the human-readable resource_name. Optional.
	Name string `yaml:"name"`
	// Scopes are the scopes the resource understands. Optional.
	Scopes []string `yaml:"scopes"`
}

// Discovery serves writ's discovery documents. Documents are built once,
// by NewDiscovery; a Discovery is safe for concurrent use.
type Discovery struct {
	issuer    string
	document  []byte            // the authorization server metadata, encoded
	resources map[string][]byte // metadata path (below the issuer) → document
	urls      map[string]string // resource ID → metadata URL
}

// NewDiscovery validates cfg and builds the documents.
func NewDiscovery(cfg DiscoveryConfig) (*Discovery, error) {
	if err := validateIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	d := &Discovery{issuer: cfg.Issuer, resources: map[string][]byte{}, urls: map[string]string{}}
	scopes := slices.Clone(cfg.ScopesSupported)
	for _, r := range cfg.Resources {
		path, err := validateResource(r)
		if err != nil {
			return nil, err
		}
		if _, dup := d.urls[r.ID]; dup {
			return nil, fmt.Errorf("%w: resource %q listed twice", ErrDiscoveryConfig, r.ID)
		}
		if _, dup := d.resources[path]; dup {
			return nil, fmt.Errorf("%w: resource %q has the metadata address of another resource", ErrDiscoveryConfig, r.ID)
		}
		doc, err := json.Marshal(resourceMetadata(cfg.Issuer, r))
		if err != nil {
			return nil, fmt.Errorf("%w: resource %q: %v", ErrDiscoveryConfig, r.ID, err)
		}
		d.resources[path] = doc
		d.urls[r.ID] = cfg.Issuer + path
		scopes = append(scopes, r.Scopes...)
	}
	for _, s := range scopes {
		if !tokens.IsScopeToken(s) {
			return nil, fmt.Errorf("%w: scope %q is not a scope token", ErrDiscoveryConfig, s)
		}
	}

	m := map[string]any{
		"issuer":                 cfg.Issuer,
		"authorization_endpoint": cfg.Issuer + "/authorize",
		"token_endpoint":         cfg.Issuer + "/token",
		"jwks_uri":               cfg.Issuer + "/.well-known/jwks.json",
		// writ has no authorization code or implicit flow: /authorize
		// exists only because MCP clients want the field, and answers
		// every request with unsupported_response_type.
		"response_types_supported": []string{},
	}
	put := func(key string, v []string) {
		if v = unique(v); len(v) > 0 {
			m[key] = v
		}
	}
	put("grant_types_supported", cfg.GrantTypes)
	put("token_endpoint_auth_methods_supported", cfg.AuthMethods)
	put("token_endpoint_auth_signing_alg_values_supported", cfg.AuthSigningAlgs)
	put("scopes_supported", scopes)
	if cfg.Registration {
		m["registration_endpoint"] = cfg.Issuer + "/register"
	}
	if cfg.MetadataDocuments {
		m["client_id_metadata_document_supported"] = true
	}
	if err := merge(m, cfg.Extra); err != nil {
		return nil, err
	}
	// The revocation and introspection endpoints authenticate clients as
	// the token endpoint does.
	endpoints := []struct {
		on   bool
		name string
		path string
	}{{cfg.Revocation, "revocation", "/revoke"}, {cfg.Introspection, "introspection", "/introspect"}}
	for _, e := range endpoints {
		if !e.on {
			continue
		}
		m[e.name+"_endpoint"] = cfg.Issuer + e.path
		if v, ok := m["token_endpoint_auth_methods_supported"]; ok {
			m[e.name+"_endpoint_auth_methods_supported"] = v
		}
		if v, ok := m["token_endpoint_auth_signing_alg_values_supported"]; ok {
			m[e.name+"_endpoint_auth_signing_alg_values_supported"] = v
		}
	}
	// Omitted, these two would mean authorization_code and implicit, and
	// client_secret_basic (RFC 8414 section 2): say what writ serves.
	for _, key := range []string{"grant_types_supported", "token_endpoint_auth_methods_supported"} {
		if v, ok := m[key]; !ok || len(stringList(v)) == 0 {
			return nil, fmt.Errorf("%w: %s must not be empty", ErrDiscoveryConfig, key)
		}
	}
	// RFC 8414 section 2: the algorithms must be listed when a JWT-based
	// method is.
	methods := stringList(m["token_endpoint_auth_methods_supported"])
	if (slices.Contains(methods, "private_key_jwt") || slices.Contains(methods, "client_secret_jwt")) &&
		len(stringList(m["token_endpoint_auth_signing_alg_values_supported"])) == 0 {
		return nil, fmt.Errorf("%w: private_key_jwt needs token_endpoint_auth_signing_alg_values_supported", ErrDiscoveryConfig)
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscoveryConfig, err)
	}
	d.document = doc
	return d, nil
}

// Routes registers the discovery documents and the authorization endpoint
// on mux: GET /.well-known/oauth-authorization-server and
// /.well-known/openid-configuration (one document), GET
// /.well-known/oauth-protected-resource/{host}{path} for each resource,
// and GET and POST /authorize (which refuses every request; see
// HandleAuthorize).
func (d *Discovery) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathAuthorizationServer, d.handleMetadata)
	mux.HandleFunc("GET "+PathOpenIDConfiguration, d.handleMetadata)
	mux.HandleFunc("GET "+PathProtectedResource+"/", d.handleResource)
	mux.HandleFunc("GET /authorize", HandleAuthorize)
	mux.HandleFunc("POST /authorize", HandleAuthorize)
}

// Metadata returns a copy of the authorization server metadata.
func (d *Discovery) Metadata() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(d.document, &m)
	return m
}

// ResourceMetadataURL is the URL of a configured resource's metadata
// document (Issuer + /.well-known/oauth-protected-resource/ + host + path
// of the ID), for the resource_metadata of 401 challenges; "" for a
// resource that is not configured.
func (d *Discovery) ResourceMetadataURL(resourceID string) string {
	return d.urls[resourceID]
}

// ResourceMetadataURLs maps every configured resource ID to its metadata
// URL: extauthz.Config.ResourceMetadataURLs.
func (d *Discovery) ResourceMetadataURLs() map[string]string {
	out := make(map[string]string, len(d.urls))
	for k, v := range d.urls {
		out[k] = v
	}
	return out
}

func (d *Discovery) handleMetadata(w http.ResponseWriter, _ *http.Request) {
	writeMetadata(w, d.document)
}

func (d *Discovery) handleResource(w http.ResponseWriter, r *http.Request) {
	doc, ok := d.resources[r.URL.EscapedPath()]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error":             "not_found",
			"error_description": "no protected resource has its metadata here",
		})
		return
	}
	writeMetadata(w, doc)
}

// writeMetadata serves a public discovery document: cacheable for a
// short while and readable from any origin (browser-based MCP clients
// fetch it cross-origin).
func writeMetadata(w http.ResponseWriter, doc []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", metadataCacheControl)
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// resourceMetadata is a resource's RFC 9728 document; unset fields are
// omitted.
func resourceMetadata(issuer string, r Resource) map[string]any {
	m := map[string]any{
		"resource":                 r.ID,
		"authorization_servers":    []string{issuer},
		"bearer_methods_supported": []string{"header"},
	}
	if s := unique(r.Scopes); len(s) > 0 {
		m["scopes_supported"] = s
	}
	if r.Name != "" {
		m["resource_name"] = r.Name
	}
	return m
}

func validateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	switch {
	case issuer == "":
		return fmt.Errorf("%w: no issuer", ErrDiscoveryConfig)
	case err != nil || u.Host == "" || u.User != nil:
		return fmt.Errorf("%w: issuer %q is not an absolute URL", ErrDiscoveryConfig, issuer)
	case !secureOrLoopback(u):
		return fmt.Errorf("%w: issuer %q must be https (http only on a loopback host)", ErrDiscoveryConfig, issuer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return fmt.Errorf("%w: issuer %q has a query or fragment", ErrDiscoveryConfig, issuer)
	case strings.HasSuffix(issuer, "/"):
		return fmt.Errorf("%w: issuer %q ends in a slash", ErrDiscoveryConfig, issuer)
	}
	return nil
}

// validateResource checks r and returns its metadata path below the
// issuer.
func validateResource(r Resource) (string, error) {
	u, err := url.Parse(r.ID)
	switch {
	case r.ID == "":
		return "", fmt.Errorf("%w: resource without id", ErrDiscoveryConfig)
	case err != nil || u.Host == "" || u.User != nil:
		return "", fmt.Errorf("%w: resource %q is not an absolute URL", ErrDiscoveryConfig, r.ID)
	case !secureOrLoopback(u):
		return "", fmt.Errorf("%w: resource %q must be https (http only on a loopback host)", ErrDiscoveryConfig, r.ID)
	case u.Fragment != "" || strings.Contains(r.ID, "#"):
		return "", fmt.Errorf("%w: resource %q has a fragment", ErrDiscoveryConfig, r.ID)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("%w: resource %q has a query", ErrDiscoveryConfig, r.ID)
	}
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: resource %q has dot segments", ErrDiscoveryConfig, r.ID)
		}
	}
	return PathProtectedResource + "/" + strings.ToLower(u.Host) + path, nil
}

func secureOrLoopback(u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// merge adds extra's fields to m: lists are joined, other fields must
// agree with what m already says.
func merge(m, extra map[string]any) error {
	for k, v := range extra {
		have, ok := m[k]
		if !ok {
			m[k] = v
			continue
		}
		a, aok := asStrings(have)
		b, bok := asStrings(v)
		if aok && bok {
			m[k] = unique(append(slices.Clone(a), b...))
			continue
		}
		x, _ := json.Marshal(have)
		y, _ := json.Marshal(v)
		if string(x) != string(y) {
			return fmt.Errorf("%w: metadata field %s is %s, and %s in the extra fields", ErrDiscoveryConfig, k, x, y)
		}
	}
	return nil
}

// asStrings reads v as a list of strings.
func asStrings(v any) ([]string, bool) {
	switch v := v.(type) {
	case []string:
		return v, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func stringList(v any) []string {
	s, _ := asStrings(v)
	return s
}

// unique drops empty strings and repeats, keeping the first order.
func unique(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
