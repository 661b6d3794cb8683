package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/tokens"
)

// replica is a second writ replica on the env's database: its own agent
// registry, directory and token endpoint, one issuer.
func (e *env) replica() *httptest.Server {
	e.t.Helper()
	ctx := context.Background()
	reg, err := agents.Open(ctx, e.db, agents.Options{Now: e.now})
	if err != nil {
		e.t.Fatal(err)
	}
	dir, err := oauth.NewDirectory(oauth.DirectoryConfig{Agents: reg, DB: e.db, Now: e.now})
	if err != nil {
		e.t.Fatal(err)
	}
	te, err := oauth.NewTokenEndpoint(oauth.TokenEndpointConfig{
		Issuer: e.srv.URL, Directory: dir, Minter: e.minter, Verifier: e.verifier, Keys: e.keyring,
		Revocations: e.revs, Resources: []string{resourceA}, Now: e.now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	te.Routes(mux)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return srv
}

func postForm(t *testing.T, base, path string, form url.Values) int {
	t.Helper()
	resp, err := http.PostForm(base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAssertionReplayAcrossReplicas spends a client assertion on one
// replica and replays it on another that shares the database.
func TestAssertionReplayAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	e.register(agentSpec{id: "cc-jwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants})
	other := e.replica()
	a := e.assertionFor("cc-jwt", e.key, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	if got := postForm(t, e.srv.URL, "/token", form); got != 200 {
		t.Fatalf("first use on replica 1: %d", got)
	}
	if got := postForm(t, other.URL, "/token", form); got != 401 {
		t.Fatalf("replay on replica 2: %d, want 401", got)
	}
	// And the other way round, with a fresh assertion.
	b := e.assertionFor("cc-jwt", e.key, nil)
	form.Set("client_assertion", b)
	if got := postForm(t, other.URL, "/token", form); got != 200 {
		t.Fatalf("first use on replica 2: %d", got)
	}
	if got := postForm(t, e.srv.URL, "/token", form); got != 401 {
		t.Fatalf("replay on replica 1: %d, want 401", got)
	}
}

// TestSpentAssertionsPurged deletes spent assertions once they expire.
func TestSpentAssertionsPurged(t *testing.T) {
	e := newEnv(t)
	count := func() int {
		var n int
		if err := e.db.QueryRow(`SELECT count(*) FROM spent_assertions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for range 3 {
		if r := e.post("/bc-authorize", e.assertion(nil), url.Values{"login_hint": {user}, "scope": {"openid"}}); r.Status != 200 {
			t.Fatalf("%d %v", r.Status, r.Body)
		}
	}
	if n := count(); n != 3 {
		t.Fatalf("%d spent assertions stored, want 3", n)
	}
	e.clock.Advance(2 * time.Minute)
	if r := e.post("/bc-authorize", e.assertion(nil), url.Values{"login_hint": {user}, "scope": {"openid"}}); r.Status != 200 {
		t.Fatalf("%d %v", r.Status, r.Body)
	}
	if n := count(); n != 1 {
		t.Errorf("%d spent assertions after the purge, want 1 (the new one)", n)
	}
}

// jwksServer serves a JWK Set that a test can swap, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
	srv     *httptest.Server
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func TestJWKSURIClient(t *testing.T) {
	keys := newJWKSServer(t, nil)
	e := newEnvOpts(t, envOptions{http: keys.srv.Client()})
	keys.set(jwksOf(t, &e.key.PublicKey))
	e.register(agentSpec{id: "remote", jwksURI: keys.srv.URL, grants: ccGrants})
	cc := func() url.Values { return url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}} }
	for range 2 {
		if r := e.post("/token", e.assertionFor("remote", e.key, nil), cc()); r.Status != 200 {
			t.Fatalf("%d %v", r.Status, r.Body)
		}
	}
	if n := keys.fetches.Load(); n != 1 {
		t.Errorf("%d fetches of jwks_uri, want 1 (cached)", n)
	}

	// The agent rotates its key. Within the refetch gap the new key is
	// unknown; after it, one refetch finds it.
	rotated, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys.set(jwksOf(t, &rotated.PublicKey))
	wantError(t, e.post("/token", e.assertionFor("remote", rotated, nil), cc()), 401, "invalid_client")
	e.clock.Advance(11 * time.Second)
	if r := e.post("/token", e.assertionFor("remote", rotated, nil), cc()); r.Status != 200 {
		t.Fatalf("after rotation: %d %v", r.Status, r.Body)
	}
	if n := keys.fetches.Load(); n != 2 {
		t.Errorf("%d fetches of jwks_uri, want 2", n)
	}
	// The old key no longer works.
	wantError(t, e.post("/token", e.assertionFor("remote", e.key, nil), cc()), 401, "invalid_client")
}

func TestJWKSURITooLarge(t *testing.T) {
	keys := newJWKSServer(t, []byte(`{"keys":[`+strings.Repeat(" ", 300<<10)+`]}`))
	e := newEnvOpts(t, envOptions{http: keys.srv.Client()})
	e.register(agentSpec{id: "remote", jwksURI: keys.srv.URL, grants: ccGrants})
	wantError(t, e.post("/token", e.assertionFor("remote", e.key, nil), url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}}), 401, "invalid_client")
	if n := keys.fetches.Load(); n == 0 {
		t.Errorf("never fetched: refused before its size was seen")
	}
}

// Keys fetched in the clear could be swapped on the way: an http
// jwks_uri is never fetched.
func TestJWKSURIMustBeHTTPS(t *testing.T) {
	var fetches atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fetches.Add(1) }))
	t.Cleanup(plain.Close)
	e := newEnvOpts(t, envOptions{http: plain.Client()})
	e.register(agentSpec{id: "remote", jwksURI: plain.URL, grants: ccGrants})
	wantError(t, e.post("/token", e.assertionFor("remote", e.key, nil), url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}}), 401, "invalid_client")
	if n := fetches.Load(); n != 0 {
		t.Errorf("an http jwks_uri was fetched %d times", n)
	}
}

// documents is a MetadataDocuments serving fixed documents.
type documents map[string]agents.ClientMetadata

func (d documents) Fetch(_ context.Context, id string) (agents.ClientMetadata, error) {
	m, ok := d[id]
	if !ok {
		return agents.ClientMetadata{}, errors.New("no such document")
	}
	return m, nil
}

func TestMetadataDocumentClient(t *testing.T) {
	const id = "https://agent.example/client.json"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	docs := documents{
		id: {ClientName: "Doc Agent", TokenEndpointAuthMethod: "private_key_jwt", JWKS: jwksOf(t, &key.PublicKey),
			GrantTypes: []string{oauth.GrantTypeClientCredentials}, Scope: "tools.read"},
		"https://basic.example/client.json": {TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{oauth.GrantTypeClientCredentials}},
	}
	e := newEnvOpts(t, envOptions{documents: docs})
	ctx := context.Background()
	cc := func() url.Values { return url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}} }

	r := e.post("/token", e.assertionFor(id, key, nil), cc())
	wantError(t, r, 400, "unauthorized_client")
	if r.str("error_description") != "the agent is awaiting review" {
		t.Errorf("description %q", r.str("error_description"))
	}
	a, err := e.agents.Get(ctx, id)
	if err != nil {
		t.Fatalf("the document's agent was not registered: %v", err)
	}
	if a.Status != agents.Pending || a.Name != "Doc Agent" {
		t.Errorf("agent %+v", a)
	}
	if err := e.agents.Approve(ctx, id, "user:op"); err != nil {
		t.Fatal(err)
	}
	r = e.post("/token", e.assertionFor(id, key, nil), cc())
	if r.Status != 200 || r.str("scope") != "tools.read" {
		t.Fatalf("approved document agent: %d %v", r.Status, r.Body)
	}
	if claims := e.verify(r.str("access_token")); claims["sub"] != id || claims["client_id"] != id {
		t.Errorf("claims %v", claims)
	}
	if err := e.agents.Suspend(ctx, id, "user:op", "test"); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.post("/token", e.assertionFor(id, key, nil), cc()), 400, "unauthorized_client")

	t.Run("a document client cannot use a secret", func(t *testing.T) {
		wantError(t, e.post("/token", "basic https://basic.example/client.json anything", cc()), 401, "invalid_client")
	})
	t.Run("an unreachable document", func(t *testing.T) {
		wantError(t, e.post("/token", e.assertionFor("https://gone.example/client.json", key, nil), cc()), 401, "invalid_client")
		if _, err := e.agents.Get(ctx, "https://gone.example/client.json"); !errors.Is(err, agents.ErrNotFound) {
			t.Errorf("a failed document registered an agent: %v", err)
		}
	})
	t.Run("a signature by another key registers nothing", func(t *testing.T) {
		docs["https://other.example/client.json"] = docs[id]
		wantError(t, e.post("/token", e.assertionFor("https://other.example/client.json", e.key, nil), cc()), 401, "invalid_client")
		if _, err := e.agents.Get(ctx, "https://other.example/client.json"); !errors.Is(err, agents.ErrNotFound) {
			t.Errorf("an unauthenticated document client was registered: %v", err)
		}
	})
}

// A metadata document is bounded as a registration is: its scope and grant
// types are cut to what the operator lets agents register.
func TestMetadataDocumentBounds(t *testing.T) {
	const id = "https://agent.example/client.json"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	docs := documents{id: {TokenEndpointAuthMethod: "private_key_jwt", JWKS: jwksOf(t, &key.PublicKey),
		GrantTypes: []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}, Scope: "tools.read admin"}}
	e := newEnvOpts(t, envOptions{documents: docs, docScopes: []string{"tools.read"}, docGrants: []string{oauth.GrantTypeClientCredentials}})
	cc := func(scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}, "scope": {scope}}
	}
	e.post("/token", e.assertionFor(id, key, nil), cc("tools.read")) // registers the agent, pending
	if err := e.agents.Approve(context.Background(), id, "user:op"); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.post("/token", e.assertionFor(id, key, nil), cc("admin")), 400, "invalid_scope")
	if r := e.post("/token", e.assertionFor(id, key, nil), cc("tools.read")); r.Status != 200 || r.str("scope") != "tools.read" {
		t.Fatalf("allowed scope: %d %v", r.Status, r.Body)
	}
	wantError(t, e.exchange(e.assertionFor(id, key, nil), e.idpToken(nil), nil), 400, "unauthorized_client")
}

func TestNewDirectoryConfigErrors(t *testing.T) {
	for name, cfg := range map[string]oauth.DirectoryConfig{
		"suspended document agents":  {DocumentStatus: agents.Suspended},
		"negative keys TTL":          {KeysTTL: -time.Second},
		"duplicate client":           {Clients: []oauth.Client{{ID: "a", SecretHash: sha256Hex("x")}, {ID: "a", SecretHash: sha256Hex("x")}}},
		"client without credentials": {Clients: []oauth.Client{{ID: "a"}}},
	} {
		if _, err := oauth.NewDirectory(cfg); !errors.Is(err, oauth.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// The registry and the metadata-document fetcher writ wires in.
var (
	_ oauth.Registry          = (*agents.Store)(nil)
	_ oauth.MetadataDocuments = (*agents.Documents)(nil)
	_ oauth.TokenVerifier     = (*tokens.Verifier)(nil)
	_ oauth.KeySet            = (*tokens.Keyring)(nil)
	_ oauth.Revocations       = (*tokens.Revocations)(nil)
)
