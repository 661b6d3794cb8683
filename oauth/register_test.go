package oauth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/store"
)

var regT0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// regLogs is slog output captured for inspection.
type regLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *regLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *regLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// regEnv is a Registrar on a real HTTP server over a real SQLite registry.
type regEnv struct {
	t        *testing.T
	dir      string
	db       *store.DB
	agents   *agents.Store
	evidence *keptEvidence
	logs     *regLogs
	clock    *clock
	srv      *httptest.Server
	mux      *http.ServeMux
	issuer   string
}

func newRegEnv(t *testing.T, cfg oauth.RegistrationConfig) *regEnv {
	t.Helper()
	ctx := t.Context()
	e := &regEnv{t: t, dir: t.TempDir(), logs: &regLogs{}, clock: &clock{t: regT0}, mux: http.NewServeMux()}
	db, err := store.OpenSQLite(ctx, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.agents, err = agents.Open(ctx, db, agents.Options{Now: e.clock.Now, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(ctx, db, audit.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.evidence = &keptEvidence{log: alog}
	e.srv = httptest.NewUnstartedServer(e.mux)
	e.issuer = "http://" + e.srv.Listener.Addr().String()
	if cfg.Policy == "" {
		cfg.Policy = oauth.PolicyOpen
	}
	cfg.Issuer = e.issuer
	cfg.Now = e.clock.Now
	if cfg.RateLimit.Burst == 0 {
		cfg.RateLimit = oauth.RateLimit{PerMinute: 6000, Burst: 1000}
	}
	reg, err := oauth.NewRegistrar(cfg, e.agents, e.evidence, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg.Routes(e.mux)
	e.srv.Start()
	t.Cleanup(func() {
		e.srv.Close()
		alog.Close(context.Background())
		db.Close()
	})
	return e
}

// regResponse is a decoded response.
type regResponse struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r regResponse) str(k string) string { s, _ := r.Body[k].(string); return s }

func (e *regEnv) do(method, path, token, contentType string, body []byte) regResponse {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := regResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			e.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return r
}

func (e *regEnv) register(token string, body any) regResponse {
	e.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.do(http.MethodPost, "/register", token, "application/json", b)
}

// mustRegister registers body and fails unless the answer is 201.
func (e *regEnv) mustRegister(body any) regResponse {
	e.t.Helper()
	r := e.register("", body)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	return r
}

// wantRegError checks an error response: status, code, no-store.
func wantRegError(t *testing.T, r regResponse, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", r.Header.Get("Cache-Control"))
	}
	if status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
	}
}

// noEmptyValues fails on any null, "" or {} anywhere in v.
func noEmptyValues(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Errorf("%s is null", path)
	case string:
		if v == "" {
			t.Errorf("%s is \"\"", path)
		}
	case map[string]any:
		if len(v) == 0 {
			t.Errorf("%s is {}", path)
		}
		for k, x := range v {
			noEmptyValues(t, path+"."+k, x)
		}
	case []any:
		for i, x := range v {
			noEmptyValues(t, fmt.Sprintf("%s[%d]", path, i), x)
		}
	}
}

func regSHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func regReadFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "register", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// regKey is a statement issuer's signing key and its public JWK Set.
type regKey struct {
	priv *ecdsa.PrivateKey
	kid  string
	jwks []byte
}

func newRegKey(t *testing.T, kid string) regKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&priv.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(map[string]any{"keys": []any{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	return regKey{priv: priv, kid: kid, jwks: set}
}

func (k regKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegisterOpen(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{Tenant: "acme", Scopes: []string{"tools.read", "tools.call"}})
	r := e.mustRegister(json.RawMessage(regReadFile(t, "mcp-client.json")))
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.Header)
	}
	noEmptyValues(t, "response", r.Body)
	id := r.str("client_id")
	if len(id) < 22 {
		t.Errorf("client_id %q shorter than 128 bits of base64url", id)
	}
	if len(r.str("client_secret")) < 43 || len(r.str("registration_access_token")) < 43 {
		t.Errorf("client_secret or registration_access_token shorter than 256 bits: %s", r.Raw)
	}
	want := map[string]any{
		"client_id":                  id,
		"client_id_issued_at":        float64(regT0.Unix()),
		"client_secret":              r.str("client_secret"),
		"client_secret_expires_at":   float64(0),
		"registration_access_token":  r.str("registration_access_token"),
		"registration_client_uri":    e.issuer + "/register/" + id,
		"redirect_uris":              []any{},
		"client_name":                "Example MCP client",
		"grant_types":                []any{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      "tools.read tools.call",
		"software_id":                "example-mcp",
		"software_version":           "1.4.0",
		"application_type":           "web",
	}
	if diff := jsonDiff(want, r.Body); diff != "" {
		t.Errorf("registration response: %s", diff)
	}
	a, c, err := e.agents.Client(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != agents.Pending || a.Tenant != "acme" || a.Name != "Example MCP client" {
		t.Errorf("agent %+v", a)
	}
	if c.SecretHash == nil || c.RegistrationTokenHash == nil {
		t.Error("hashes not stored")
	}
	recs := e.evidence.records()
	if len(recs) != 1 || recs[0].Outcome != "agent_registered" || recs[0].Agent != id || recs[0].Tenant != "acme" || recs[0].Status != 201 {
		t.Errorf("evidence %+v", recs)
	}
}

// jsonDiff compares two decoded JSON values; "" when equal.
func jsonDiff(want, got any) string {
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if bytes.Equal(w, g) {
		return ""
	}
	return "\n got " + string(g) + "\nwant " + string(w)
}

func TestRegisterActiveAndPrivateKeyJWT(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{NewAgents: "active", ClientSecretTTL: time.Hour})
	r := e.mustRegister(json.RawMessage(regReadFile(t, "private-key-jwt.json")))
	noEmptyValues(t, "response", r.Body)
	for _, k := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := r.Body[k]; ok {
			t.Errorf("private_key_jwt registration carries %s", k)
		}
	}
	if st, _ := e.agents.Status(t.Context(), r.str("client_id")); st != "active" {
		t.Errorf("status %q, want active", st)
	}
	if _, ok := r.Body["jwks"].(map[string]any); !ok {
		t.Errorf("jwks not returned as an object: %s", r.Raw)
	}
	// A secret TTL gives client_secret_expires_at.
	r = e.mustRegister(map[string]any{})
	if got := r.Body["client_secret_expires_at"]; got != float64(regT0.Add(time.Hour).Unix()) {
		t.Errorf("client_secret_expires_at = %v", got)
	}
}

func TestRegisterErrors(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{})
	big := `{"client_name":"` + strings.Repeat("a", oauth.MaxRegistrationBody) + `"}`
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"form body", "application/x-www-form-urlencoded", "client_name=x", 415, "invalid_request"},
		{"no content type", "", "{}", 415, "invalid_request"},
		{"oversized body", "application/json", big, 413, "invalid_request"},
		{"array body", "application/json", `[]`, 400, "invalid_client_metadata"},
		{"string body", "application/json", `"x"`, 400, "invalid_client_metadata"},
		{"malformed JSON", "application/json", `{"client_name":`, 400, "invalid_client_metadata"},
		{"trailing value", "application/json", `{} {}`, 400, "invalid_client_metadata"},
		{"repeated member", "application/json", string(regReadFile(t, "hostile-duplicate.json")), 400, "invalid_client_metadata"},
		{"redirect_uris as a string", "application/json", `{"redirect_uris":"https://app.example/cb"}`, 400, "invalid_client_metadata"},
		{"grant_types as an object", "application/json", `{"grant_types":{"0":"client_credentials"}}`, 400, "invalid_client_metadata"},
		{"jwks as a string", "application/json", `{"token_endpoint_auth_method":"private_key_jwt","jwks":"keys"}`, 400, "invalid_client_metadata"},
		{"client_name as a number", "application/json", `{"client_name":7}`, 400, "invalid_client_metadata"},
		{"contacts with a number", "application/json", `{"contacts":["a",1]}`, 400, "invalid_client_metadata"},
		{"javascript redirect", "application/json", string(regReadFile(t, "hostile-javascript.json")), 400, "invalid_redirect_uri"},
		{"fragment redirect", "application/json", string(regReadFile(t, "hostile-fragment.json")), 400, "invalid_redirect_uri"},
		{"both jwks and jwks_uri", "application/json", string(regReadFile(t, "hostile-both-keys.json")), 400, "invalid_client_metadata"},
		{"private key in jwks", "application/json", string(regReadFile(t, "hostile-private-key.json")), 400, "invalid_client_metadata"},
		{"authorization_code", "application/json", `{"grant_types":["authorization_code"],"response_types":["code"]}`, 400, "invalid_client_metadata"},
		{"response type code", "application/json", `{"response_types":["code"]}`, 400, "invalid_client_metadata"},
		{"auth method none", "application/json", `{"token_endpoint_auth_method":"none"}`, 400, "invalid_client_metadata"},
		{"statement not a string", "application/json", `{"software_statement":{"iss":"x"}}`, 400, "invalid_software_statement"},
		{"statement from nobody trusted", "application/json", `{"software_statement":"a.b.c"}`, 400, "invalid_software_statement"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/register", "", tc.contentType, []byte(tc.body))
			wantRegError(t, r, tc.status, tc.code)
			if d := r.str("error_description"); d == "" || len(d) > 300 {
				t.Errorf("error_description %q", d)
			}
		})
	}
	if list, err := e.agents.List(t.Context(), agents.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("refused registrations left %d agents (%v)", len(list), err)
	}
	if n := len(e.evidence.records()); n != 0 {
		t.Errorf("refused registrations left %d evidence records", n)
	}
	// Members are matched by exact name: case-folded names are extensions.
	r := e.register("", regReadFile(t, "hostile-case.json"))
	if r.Status != http.StatusCreated || r.str("token_endpoint_auth_method") != "client_secret_basic" {
		t.Errorf("case-folded members were read: %d %s", r.Status, r.Raw)
	}
}

func TestRegisterInitialAccessToken(t *testing.T) {
	const token = "iat-Zm9vYmFyYmF6cXV4"
	e := newRegEnv(t, oauth.RegistrationConfig{
		Policy: oauth.PolicyInitialAccessToken,
		InitialAccessTokens: []oauth.InitialAccessToken{
			{SHA256: regSHA256Hex("other-token"), Owner: "bob", Tenant: "other"},
			{SHA256: regSHA256Hex(token), Owner: "alice@example.com", Tenant: "acme"},
		},
	})
	for _, tc := range []struct{ name, token string }{
		{"missing", ""}, {"wrong", "not-the-token"}, {"malformed", "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRegError(t, e.register(tc.token, map[string]any{}), 401, "invalid_token")
		})
	}
	r := e.register(token, map[string]any{"client_name": "bot"})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	a, err := e.agents.Get(t.Context(), r.str("client_id"))
	if err != nil || a.Owner != "alice@example.com" || a.Tenant != "acme" {
		t.Errorf("agent %+v, %v", a, err)
	}
	if strings.Contains(e.logs.String(), token) {
		t.Error("initial access token in the logs")
	}
}

func TestRegisterSoftwareStatement(t *testing.T) {
	trusted := newRegKey(t, "ss-1")
	rotated := newRegKey(t, "ss-2")
	untrusted := newRegKey(t, "ss-1") // same kid, other key
	const iss = "https://software.example.com"
	const remoteIss = "https://remote-software.example.com"
	var jwksMu sync.Mutex
	served := trusted.jwks
	jwksSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		jwksMu.Lock()
		defer jwksMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(served)
	}))
	t.Cleanup(jwksSrv.Close)
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, trusted.jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newRegEnv(t, oauth.RegistrationConfig{
		Policy:    oauth.PolicySoftwareStatement,
		NewAgents: "active",
		SoftwareStatements: oauth.SoftwareStatementConfig{
			Issuers: []oauth.StatementIssuer{
				{Issuer: iss, JWKSFile: jwksFile},
				{Issuer: remoteIss, JWKSURI: jwksSrv.URL + "/jwks.json"},
			},
			ApprovedSoftwareIDs: []string{"approved-app"},
		},
		Scopes:     []string{"tools.read"},
		HTTPClient: jwksSrv.Client(),
	})
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss, "software_id": "approved-app", "client_name": "Statement Name",
			"tenant": "acme", "sub": "vendor-1", "iat": regT0.Unix(), "exp": regT0.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(trusted.jwks)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		statement any
		code      string
	}{
		{"missing", nil, "invalid_software_statement"},
		{"not a JWT", "not-a-jwt", "invalid_software_statement"},
		{"untrusted key", untrusted.sign(t, claims(nil)), "invalid_software_statement"},
		{"unknown issuer", trusted.sign(t, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "invalid_software_statement"},
		{"alg none", none, "invalid_software_statement"},
		{"alg HS256", hs, "invalid_software_statement"},
		{"expired", trusted.sign(t, claims(func(c jwt.MapClaims) { c["exp"] = regT0.Add(-time.Hour).Unix() })), "invalid_software_statement"},
		{"tenant not a string", trusted.sign(t, claims(func(c jwt.MapClaims) { c["tenant"] = 7 })), "invalid_software_statement"},
		{"unapproved software_id", trusted.sign(t, claims(func(c jwt.MapClaims) { c["software_id"] = "other-app" })), "unapproved_software_statement"},
		{"no software_id", trusted.sign(t, claims(func(c jwt.MapClaims) { delete(c, "software_id") })), "unapproved_software_statement"},
		{"statement metadata refused", trusted.sign(t, claims(func(c jwt.MapClaims) { c["grant_types"] = []string{"password"} })), "invalid_client_metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"client_name": "Body Name"}
			if tc.statement != nil {
				body["software_statement"] = tc.statement
			}
			wantRegError(t, e.register("", body), 400, tc.code)
		})
	}

	good := trusted.sign(t, claims(nil))
	r := e.register("", map[string]any{"client_name": "Body Name", "scope": "tools.read", "software_statement": good})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	if r.str("client_name") != "Statement Name" || r.str("scope") != "tools.read" || r.str("software_id") != "approved-app" {
		t.Errorf("statement claims did not override the body: %s", r.Raw)
	}
	if r.str("software_statement") != good {
		t.Error("software_statement not returned as sent")
	}
	a, err := e.agents.Get(t.Context(), r.str("client_id"))
	if err != nil || a.Tenant != "acme" || a.Owner != "vendor-1" {
		t.Errorf("agent %+v, %v", a, err)
	}

	// Under this policy an update needs a statement too, for the same agent.
	path := "/register/" + r.str("client_id")
	token := r.str("registration_access_token")
	b, _ := json.Marshal(map[string]any{"client_id": r.str("client_id")})
	wantRegError(t, e.do(http.MethodPut, path, token, "application/json", b), 400, "invalid_software_statement")
	b, _ = json.Marshal(map[string]any{"client_id": r.str("client_id"), "software_statement": trusted.sign(t, claims(func(c jwt.MapClaims) { c["tenant"] = "other" }))})
	wantRegError(t, e.do(http.MethodPut, path, token, "application/json", b), 400, "invalid_software_statement")
	b, _ = json.Marshal(map[string]any{"client_id": r.str("client_id"), "software_statement": good})
	if r := e.do(http.MethodPut, path, token, "application/json", b); r.Status != 200 || r.str("client_name") != "Statement Name" {
		t.Errorf("update with the statement: %d %s", r.Status, r.Raw)
	}

	// An issuer's jwks_uri is fetched on first use, and again for a new kid.
	remote := claims(func(c jwt.MapClaims) { c["iss"] = remoteIss })
	if r := e.register("", map[string]any{"software_statement": trusted.sign(t, remote)}); r.Status != 201 {
		t.Fatalf("statement from a jwks_uri issuer: %d %s", r.Status, r.Raw)
	}
	jwksMu.Lock()
	served = rotated.jwks
	jwksMu.Unlock()
	e.clock.Advance(2 * time.Minute)
	if r := e.register("", map[string]any{"software_statement": rotated.sign(t, remote)}); r.Status != 201 {
		t.Fatalf("statement under a rotated key: %d %s", r.Status, r.Raw)
	}
}

func TestRegistrationManagement(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{Tenant: "acme", NewAgents: "active", Scopes: []string{"a"}})
	first := e.mustRegister(map[string]any{"client_name": "first", "scope": "a"})
	other := e.mustRegister(map[string]any{"client_name": "other"})
	id, token, secret := first.str("client_id"), first.str("registration_access_token"), first.str("client_secret")
	path := "/register/" + id

	// Reading: the current registration, the token echoed, no secret.
	r := e.do(http.MethodGet, path, token, "", nil)
	if r.Status != 200 {
		t.Fatalf("read: %d %s", r.Status, r.Raw)
	}
	noEmptyValues(t, "read", r.Body)
	if _, ok := r.Body["client_secret"]; ok {
		t.Error("read returned a client_secret")
	}
	if r.str("registration_access_token") != token || r.str("client_name") != "first" || r.Body["client_secret_expires_at"] != float64(0) {
		t.Errorf("read: %s", r.Raw)
	}

	// Refusals look alike whether or not the client exists.
	unknown := e.do(http.MethodGet, "/register/no-such-client", token, "", nil)
	wrong := e.do(http.MethodGet, path, "wrong-token", "", nil)
	for name, r := range map[string]regResponse{
		"no token":             e.do(http.MethodGet, path, "", "", nil),
		"wrong token":          wrong,
		"other client's token": e.do(http.MethodGet, path, other.str("registration_access_token"), "", nil),
		"unknown client":       unknown,
		"put, wrong token":     e.do(http.MethodPut, path, "wrong-token", "application/json", []byte(`{}`)),
		"delete, other token":  e.do(http.MethodDelete, path, other.str("registration_access_token"), "", nil),
	} {
		t.Run(name, func(t *testing.T) { wantRegError(t, r, 401, "invalid_token") })
	}
	if !bytes.Equal(unknown.Raw, wrong.Raw) {
		t.Errorf("unknown client and wrong token differ: %s vs %s", unknown.Raw, wrong.Raw)
	}

	put := func(body map[string]any) regResponse {
		b, _ := json.Marshal(body)
		return e.do(http.MethodPut, path, token, "application/json", b)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"no client_id", map[string]any{"client_name": "x"}, "invalid_client_metadata"},
		{"other client_id", map[string]any{"client_id": other.str("client_id")}, "invalid_client_metadata"},
		{"wrong client_secret", map[string]any{"client_id": id, "client_secret": "guess"}, "invalid_client_metadata"},
		{"client_secret not a string", map[string]any{"client_id": id, "client_secret": 1}, "invalid_client_metadata"},
		{"bad redirect", map[string]any{"client_id": id, "redirect_uris": []string{"javascript:x"}}, "invalid_redirect_uri"},
	} {
		t.Run("update "+tc.name, func(t *testing.T) { wantRegError(t, put(tc.body), 400, tc.code) })
	}

	// Update replaces: the omitted scope is gone, the secret kept. The
	// response fields the client echoes back are ignored.
	echo := map[string]any{}
	for k, v := range first.Body {
		echo[k] = v
	}
	delete(echo, "scope")
	echo["client_name"] = "renamed"
	r = put(echo)
	if r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Raw)
	}
	noEmptyValues(t, "update", r.Body)
	if _, ok := r.Body["scope"]; ok || r.str("client_name") != "renamed" || r.str("registration_access_token") != token {
		t.Errorf("update: %s", r.Raw)
	}
	if _, ok := r.Body["client_secret"]; ok {
		t.Error("update re-issued the client secret")
	}
	if a, _ := e.agents.Get(t.Context(), id); a.Name != "renamed" || a.Tenant != "acme" {
		t.Errorf("agent after update %+v", a)
	}

	// Moving to private_key_jwt drops the secret; moving back issues one.
	pk := map[string]any{"client_id": id, "client_secret": secret, "token_endpoint_auth_method": "private_key_jwt",
		"jwks": json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)}
	if r = put(pk); r.Status != 200 || r.Body["client_secret_expires_at"] != nil {
		t.Fatalf("update to private_key_jwt: %d %s", r.Status, r.Raw)
	}
	if _, c, _ := e.agents.Client(t.Context(), id); c.SecretHash != nil {
		t.Error("secret hash kept after moving to private_key_jwt")
	}
	if r = put(map[string]any{"client_id": id}); r.Status != 200 || len(r.str("client_secret")) < 43 {
		t.Fatalf("update to client_secret_basic: %d %s", r.Status, r.Raw)
	}

	// Deleting removes the agent; its token no longer works.
	if r = e.do(http.MethodDelete, path, token, "", nil); r.Status != 204 || len(r.Raw) != 0 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if _, err := e.agents.Get(t.Context(), id); !errors.Is(err, agents.ErrNotFound) {
		t.Errorf("agent after delete: %v", err)
	}
	if _, known := e.agents.Status(t.Context(), id); known {
		t.Error("deleted agent still known to the Check path")
	}
	wantRegError(t, e.do(http.MethodGet, path, token, "", nil), 401, "invalid_token")

	var outcomes []string
	for _, rec := range e.evidence.records() {
		if rec.Agent == id {
			outcomes = append(outcomes, rec.Outcome)
			if rec.Tenant != "acme" {
				t.Errorf("evidence tenant %q", rec.Tenant)
			}
		}
	}
	want := []string{"agent_registered", "agent_updated", "agent_updated", "agent_updated", "agent_deleted"}
	if !slices.Equal(outcomes, want) {
		t.Errorf("evidence outcomes %v, want %v", outcomes, want)
	}
}

func TestRegisterEvidenceFailure(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{})
	e.evidence.mu.Lock()
	e.evidence.fail = audit.ErrUnavailable
	e.evidence.mu.Unlock()
	wantRegError(t, e.register("", map[string]any{}), 500, "server_error")
	if list, err := e.agents.List(t.Context(), agents.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("registration without evidence kept %d agents (%v)", len(list), err)
	}
}

func TestRegisterClosed(t *testing.T) {
	mux := http.NewServeMux()
	reg, err := oauth.NewRegistrar(oauth.RegistrationConfig{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Routes(mux)
	if reg.Endpoint() != "" {
		t.Errorf("closed registrar has endpoint %q", reg.Endpoint())
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/register", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound {
		t.Errorf("closed policy: POST /register = %d, want 404", rec.Code)
	}
}

func TestRegisterSecretsStayOut(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{})
	var secrets []string
	for range 3 {
		r := e.mustRegister(map[string]any{"client_name": "bot"})
		secrets = append(secrets, r.str("client_secret"), r.str("registration_access_token"))
		path := "/register/" + r.str("client_id")
		token := r.str("registration_access_token")
		e.do(http.MethodGet, path, token, "", nil)
		e.do(http.MethodPut, path, token, "application/json", []byte(`{"client_id":"`+r.str("client_id")+`","client_secret":"`+r.str("client_secret")+`"}`))
	}
	// The last one is deleted; wrong guesses are logged too.
	e.do(http.MethodGet, "/register/x", secrets[0], "", nil)
	recs, err := json.Marshal(e.evidence.records())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.evidence.log.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(e.dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("database files %v, %v", files, err)
	}
	var stored []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b...)
	}
	if !bytes.Contains(stored, []byte("agent_registered")) {
		t.Fatal("the scan does not see the evidence records")
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "agent registered") {
		t.Fatal("the scan does not see the logs")
	}
	for i, s := range secrets {
		if len(s) < 43 {
			t.Fatalf("secret %d missing", i)
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret %d in the logs", i)
		}
		if bytes.Contains(recs, []byte(s)) {
			t.Errorf("secret %d in an evidence record", i)
		}
		if bytes.Contains(stored, []byte(s)) {
			t.Errorf("secret %d in the database files", i)
		}
	}
}

func TestRegisterConcurrently(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{})
	const n = 16
	ids := make(chan string, n)
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, _ := json.Marshal(map[string]any{"client_name": "bot " + string(rune('a'+i))})
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/register", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&body) != nil {
				errs <- resp.Status
				return
			}
			ids <- body["client_id"].(string)
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("client_id %s issued twice", id)
		}
		seen[id] = true
	}
	list, err := e.agents.List(t.Context(), agents.Filter{})
	if err != nil || len(list) != n || len(seen) != n {
		t.Errorf("%d agents, %d ids, %v; want %d", len(list), len(seen), err, n)
	}
	if got := len(e.evidence.records()); got != n {
		t.Errorf("%d evidence records, want %d", got, n)
	}
}

func TestRegisterRateLimit(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{RateLimit: oauth.RateLimit{PerMinute: 60, Burst: 2}})
	post := func(addr string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = addr
		req.Header.Set("X-Forwarded-For", "203.0.113.99") // never trusted
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		return rec
	}
	wantLimited := func(rec *httptest.ResponseRecorder, retry string) {
		t.Helper()
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 429 || body["error"] != "slow_down" || rec.Header().Get("Retry-After") != retry {
			t.Fatalf("got %d %v Retry-After %q, want 429 slow_down Retry-After %s", rec.Code, body, rec.Header().Get("Retry-After"), retry)
		}
	}
	for range 2 {
		if rec := post("192.0.2.1:1000"); rec.Code != 201 {
			t.Fatalf("within burst: %d %s", rec.Code, rec.Body)
		}
	}
	wantLimited(post("192.0.2.1:1001"), "1")
	// Another port is the same address; another address has its own bucket.
	wantLimited(post("192.0.2.1:2000"), "1")
	if rec := post("192.0.2.2:1000"); rec.Code != 201 {
		t.Fatalf("other address: %d", rec.Code)
	}
	// IPv6 addresses share a bucket per /64.
	post("[2001:db8::1]:1")
	post("[2001:db8::2]:1")
	wantLimited(post("[2001:db8::3]:1"), "1")
	// Time refills the bucket.
	e.clock.Advance(time.Second)
	if rec := post("192.0.2.1:1000"); rec.Code != 201 {
		t.Fatalf("after a second: %d", rec.Code)
	}
	// The overall bucket (10 x burst) stops many addresses together.
	e.clock.Advance(time.Hour)
	limited := 0
	for i := range 30 {
		if rec := post(fmt.Sprintf("198.51.100.%d:1", i+1)); rec.Code == 429 {
			limited++
		}
	}
	if limited != 10 {
		t.Errorf("overall limit refused %d of 30 single requests, want 10", limited)
	}
	// RFC 7592 requests are limited too.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/register/x", nil)
	req.RemoteAddr = "198.51.100.1:1"
	e.mux.ServeHTTP(rec, req)
	if rec.Code != 429 {
		t.Errorf("read while limited: %d", rec.Code)
	}
}

func TestRegistrationConfig(t *testing.T) {
	const doc = `
registration:
  policy: initial_access_token
  new_agents: active
  tenant: ""
  initial_access_tokens:
    - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      owner: alice@example.com
      tenant: acme
  software_statements:
    issuers:
      - issuer: https://software.example.com
        jwks_file: /etc/writ/software-jwks.json
    approved_software_ids: [app-1]
  rate_limit: {per_minute: 30, burst: 10}
  client_secret_ttl: 24h
  metadata_documents: true
`
	var got struct {
		Registration oauth.RegistrationConfig `yaml:"registration"`
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	c := got.Registration
	if c.Policy != "initial_access_token" || c.NewAgents != "active" || len(c.InitialAccessTokens) != 1 ||
		c.InitialAccessTokens[0].Tenant != "acme" || c.SoftwareStatements.Issuers[0].JWKSFile != "/etc/writ/software-jwks.json" ||
		c.SoftwareStatements.ApprovedSoftwareIDs[0] != "app-1" || c.RateLimit != (oauth.RateLimit{PerMinute: 30, Burst: 10}) ||
		c.ClientSecretTTL != 24*time.Hour || !c.MetadataDocuments || !c.Enabled() {
		t.Errorf("decoded %+v", c)
	}
	c.Issuer = "https://writ.example.com"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	base := oauth.RegistrationConfig{Policy: oauth.PolicyOpen, Issuer: "https://writ.example.com"}
	for name, edit := range map[string]func(c *oauth.RegistrationConfig){
		"unknown policy":          func(c *oauth.RegistrationConfig) { c.Policy = "anyone" },
		"no issuer":               func(c *oauth.RegistrationConfig) { c.Issuer = "" },
		"bad new_agents":          func(c *oauth.RegistrationConfig) { c.NewAgents = "suspended" },
		"token policy, no tokens": func(c *oauth.RegistrationConfig) { c.Policy = oauth.PolicyInitialAccessToken },
		"token hash not hex": func(c *oauth.RegistrationConfig) {
			c.InitialAccessTokens = []oauth.InitialAccessToken{{SHA256: "plain"}}
		},
		"statement policy, no issuers": func(c *oauth.RegistrationConfig) { c.Policy = oauth.PolicySoftwareStatement },
		"negative rate":                func(c *oauth.RegistrationConfig) { c.RateLimit.PerMinute = -1 },
		"negative secret ttl":          func(c *oauth.RegistrationConfig) { c.ClientSecretTTL = -time.Second },
	} {
		c := base
		edit(&c)
		if err := c.Validate(); !errors.Is(err, oauth.ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", name, err)
		}
	}
	for name, is := range map[string]oauth.StatementIssuer{
		"no key source":   {Issuer: "https://s.example"},
		"two key sources": {Issuer: "https://s.example", JWKSFile: "x", JWKSURI: "https://s.example/jwks"},
		"http jwks_uri":   {Issuer: "https://s.example", JWKSURI: "http://s.example/jwks"},
		"missing file":    {Issuer: "https://s.example", JWKSFile: filepath.Join(t.TempDir(), "none.json")},
		"symmetric key":   {Issuer: "https://s.example", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)},
		"no issuer":       {JWKS: newRegKey(t, "k").jwks},
	} {
		c := base
		c.SoftwareStatements.Issuers = []oauth.StatementIssuer{is}
		if _, err := oauth.NewRegistrar(c, &agents.Store{}, &keptEvidence{}, nil); !errors.Is(err, oauth.ErrConfig) {
			t.Errorf("%s: NewRegistrar = %v, want ErrConfig", name, err)
		}
	}
}
