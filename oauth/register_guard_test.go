package oauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/oauth"
)

const (
	grantCC   = agents.GrantClientCredentials
	grantTE   = agents.GrantTokenExchange
	grantCIBA = agents.GrantCIBA
)

// managed is one registration and what manages it.
type managed struct {
	id, token, path string
	body            map[string]any
}

func (e *regEnv) mustManage(body map[string]any) managed {
	e.t.Helper()
	r := e.mustRegister(body)
	id := r.str("client_id")
	return managed{id: id, token: r.str("registration_access_token"), path: "/register/" + id, body: r.Body}
}

// put sends an RFC 7592 update of m with body, to which client_id is added.
func (e *regEnv) put(m managed, body map[string]any) regResponse {
	e.t.Helper()
	b := map[string]any{"client_id": m.id}
	for k, v := range body {
		b[k] = v
	}
	raw, err := json.Marshal(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPut, m.path, m.token, "application/json", raw)
}

// A suspended agent may neither update nor delete its registration: either
// would let it shed its suspension. A pending agent may not update what
// the operator reviews, but may withdraw it. Reading stays allowed.
func TestRegistrationManagementByStatus(t *testing.T) {
	t.Run("suspended", func(t *testing.T) {
		e := newRegEnv(t, oauth.RegistrationConfig{NewAgents: "active"})
		m := e.mustManage(map[string]any{"client_name": "bot"})
		if err := e.agents.Suspend(t.Context(), m.id, "ops@example.com", "misbehaving"); err != nil {
			t.Fatal(err)
		}
		before := len(e.evidence.records())

		r := e.do(http.MethodDelete, m.path, m.token, "", nil)
		wantRegError(t, r, http.StatusForbidden, "access_denied")
		if r.str("error_description") == "" {
			t.Error("403 without error_description")
		}
		wantRegError(t, e.put(m, map[string]any{"client_name": "innocent"}), http.StatusForbidden, "access_denied")

		a, err := e.agents.Get(t.Context(), m.id)
		if err != nil || a.Status != agents.Suspended || a.Name != "bot" {
			t.Errorf("agent after refused changes: %+v, %v", a, err)
		}
		if st, known := e.agents.Status(t.Context(), m.id); !known || st != string(agents.Suspended) {
			t.Errorf("Check path sees %q (known %v), want suspended", st, known)
		}
		if n := len(e.evidence.records()); n != before {
			t.Errorf("refused changes added %d evidence records", n-before)
		}
		if r := e.do(http.MethodGet, m.path, m.token, "", nil); r.Status != http.StatusOK || r.str("client_id") != m.id {
			t.Errorf("read while suspended: %d %s", r.Status, r.Raw)
		}
		// Resumed, it manages its registration again.
		if err := e.agents.Resume(t.Context(), m.id, "ops@example.com"); err != nil {
			t.Fatal(err)
		}
		if r := e.put(m, map[string]any{"client_name": "renamed"}); r.Status != http.StatusOK {
			t.Errorf("update after resume: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("pending", func(t *testing.T) {
		e := newRegEnv(t, oauth.RegistrationConfig{NewAgents: "pending"})
		m := e.mustManage(map[string]any{"client_name": "bot"})
		wantRegError(t, e.put(m, map[string]any{"client_name": "other"}), http.StatusForbidden, "access_denied")
		if a, err := e.agents.Get(t.Context(), m.id); err != nil || a.Name != "bot" || a.Status != agents.Pending {
			t.Errorf("agent after refused update: %+v, %v", a, err)
		}
		if r := e.do(http.MethodGet, m.path, m.token, "", nil); r.Status != http.StatusOK {
			t.Errorf("read while pending: %d %s", r.Status, r.Raw)
		}
		if r := e.do(http.MethodDelete, m.path, m.token, "", nil); r.Status != http.StatusNoContent {
			t.Errorf("pending agent withdrawing: %d %s", r.Status, r.Raw)
		}
		if _, err := e.agents.Get(t.Context(), m.id); !errors.Is(err, agents.ErrNotFound) {
			t.Errorf("withdrawn agent: %v", err)
		}
	})
}

// An update never widens what an agent registered: no new scope, no new
// grant type, no dropping of the scope of an agent that may exchange
// tokens (where no registered scope means the subject token's whole
// scope). Narrowing, key rotation and other fields pass.
func TestRegistrationUpdateCannotWiden(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{NewAgents: "active",
		Scopes: []string{"a", "b", "c"}, GrantTypes: []string{grantCC, grantTE, grantCIBA}})
	key1, key2 := newRegKey(t, "k1"), newRegKey(t, "k2")
	start := map[string]any{"client_name": "bot", "scope": "a b", "grant_types": []string{grantCC, grantTE},
		"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(key1.jwks)}
	with := func(edit map[string]any) map[string]any {
		b := map[string]any{}
		for k, v := range start {
			b[k] = v
		}
		for k, v := range edit {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	cases := []struct {
		name     string
		register map[string]any // start when nil
		update   map[string]any
		ok       bool
	}{
		{"same", nil, with(nil), true},
		{"narrower scope", nil, with(map[string]any{"scope": "a"}), true},
		{"narrower grants", nil, with(map[string]any{"grant_types": []string{grantTE}}), true},
		{"rotated jwks", nil, with(map[string]any{"jwks": json.RawMessage(key2.jwks)}), true},
		{"jwks_uri instead of jwks", nil, with(map[string]any{"jwks": nil, "jwks_uri": "https://bot.example/jwks.json"}), true},
		{"renamed", nil, with(map[string]any{"client_name": "bot 2"}), true},
		{"wider scope", nil, with(map[string]any{"scope": "a b c"}), false},
		{"other scope", nil, with(map[string]any{"scope": "c"}), false},
		{"wider grants", nil, with(map[string]any{"grant_types": []string{grantCC, grantTE, grantCIBA}}), false},
		{"other grant", nil, with(map[string]any{"grant_types": []string{grantCIBA}}), false},
		{"scope dropped, token exchange kept", nil, with(map[string]any{"scope": nil}), false},
		{"scope dropped with token exchange", nil, with(map[string]any{"scope": nil, "grant_types": []string{grantCC}}), true},
		{"omitted grant_types default to one held", nil, with(map[string]any{"grant_types": nil}), true},
		{"scope where none was", map[string]any{"client_name": "bot"}, map[string]any{"scope": "a"}, false},
		{"omitted grant_types default to one not held", map[string]any{"grant_types": []string{grantTE}},
			map[string]any{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := tc.register
			if reg == nil {
				reg = start
			}
			m := e.mustManage(reg)
			_, before, err := e.agents.Client(t.Context(), m.id)
			if err != nil {
				t.Fatal(err)
			}
			r := e.put(m, tc.update)
			_, after, err := e.agents.Client(t.Context(), m.id)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.ok {
				wantRegError(t, r, http.StatusBadRequest, "invalid_client_metadata")
				if d := r.str("error_description"); !strings.Contains(d, "register again") {
					t.Errorf("error_description %q", d)
				}
				if jsonDiff(before.Metadata, after.Metadata) != "" {
					t.Errorf("refused update changed the registration: %s", jsonDiff(before.Metadata, after.Metadata))
				}
				return
			}
			if r.Status != http.StatusOK {
				t.Fatalf("update: %d %s", r.Status, r.Raw)
			}
			if got := r.str("scope"); got != after.Metadata.Scope {
				t.Errorf("response scope %q, stored %q", got, after.Metadata.Scope)
			}
		})
	}
	// The rotated key is the one stored.
	m := e.mustManage(start)
	if r := e.put(m, with(map[string]any{"jwks": json.RawMessage(key2.jwks)})); r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Raw)
	}
	_, c, err := e.agents.Client(t.Context(), m.id)
	if err != nil || !bytes.Contains(c.Metadata.JWKS, []byte(`"k2"`)) || bytes.Contains(c.Metadata.JWKS, []byte(`"k1"`)) {
		t.Errorf("jwks after rotation %s, %v", c.Metadata.JWKS, err)
	}
}

// Agents register only the scopes and grant types the operator allows,
// whether the request or a software statement names them.
func TestRegistrationAllowLists(t *testing.T) {
	signer := newRegKey(t, "ss")
	const iss = "https://software.example.com"
	statement := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{"iss": iss, "software_id": "app", "iat": regT0.Unix(), "exp": regT0.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return signer.sign(t, c)
	}
	issuers := oauth.SoftwareStatementConfig{Issuers: []oauth.StatementIssuer{{Issuer: iss, JWKS: signer.jwks}}}
	listed := oauth.RegistrationConfig{Scopes: []string{"tools.read", "tools.call"}, SoftwareStatements: issuers}
	withCIBA := listed
	withCIBA.GrantTypes = []string{grantCC, grantCIBA}
	none := oauth.RegistrationConfig{SoftwareStatements: issuers}
	envs := map[string]*regEnv{"listed": newRegEnv(t, listed), "with CIBA": newRegEnv(t, withCIBA), "none": newRegEnv(t, none)}
	cases := []struct {
		env  string
		name string
		body map[string]any
		code string // "" for 201
	}{
		{"listed", "listed scopes", map[string]any{"scope": "tools.call tools.read"}, ""},
		{"listed", "one listed scope", map[string]any{"scope": "tools.read"}, ""},
		{"listed", "no scope", map[string]any{}, ""},
		{"listed", "unlisted scope", map[string]any{"scope": "tools.read admin"}, "invalid_client_metadata"},
		{"listed", "unlisted scope by statement", map[string]any{"scope": "tools.read",
			"software_statement": statement(jwt.MapClaims{"scope": "admin"})}, "invalid_client_metadata"},
		{"listed", "listed scope by statement", map[string]any{"software_statement": statement(jwt.MapClaims{"scope": "tools.call"})}, ""},
		{"listed", "default grant", map[string]any{}, ""},
		{"listed", "token exchange by default", map[string]any{"grant_types": []string{grantCC, grantTE}}, ""},
		{"listed", "CIBA not listed", map[string]any{"grant_types": []string{grantCIBA}}, "invalid_client_metadata"},
		{"listed", "CIBA by statement, not listed", map[string]any{
			"software_statement": statement(jwt.MapClaims{"grant_types": []string{grantCIBA}})}, "invalid_client_metadata"},
		{"with CIBA", "CIBA listed", map[string]any{"grant_types": []string{grantCC, grantCIBA}}, ""},
		{"with CIBA", "token exchange not listed", map[string]any{"grant_types": []string{grantTE}}, "invalid_client_metadata"},
		{"none", "no scope allowed", map[string]any{"scope": "tools.read"}, "invalid_client_metadata"},
		{"none", "empty scope allowed", map[string]any{"client_name": "bot"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.env+"/"+tc.name, func(t *testing.T) {
			e := envs[tc.env]
			r := e.register("", tc.body)
			if tc.code != "" {
				wantRegError(t, r, http.StatusBadRequest, tc.code)
				return
			}
			if r.Status != http.StatusCreated {
				t.Fatalf("register: %d %s", r.Status, r.Raw)
			}
		})
	}
	for name, e := range envs {
		for _, a := range mustList(t, e) {
			_, c, err := e.agents.Client(t.Context(), a.ClientID)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(c.Metadata.Scope, "admin") || (name != "with CIBA" && slices.Contains(c.Metadata.GrantTypes, grantCIBA)) {
				t.Errorf("%s: stored %+v", name, c.Metadata)
			}
		}
	}
}

func mustList(t *testing.T, e *regEnv) []agents.Agent {
	t.Helper()
	l, err := e.agents.List(t.Context(), agents.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The allow-lists bind updates too: once the operator narrows them, an
// agent holding a scope or grant type no longer listed must drop it.
func TestRegistrationAllowListsOnUpdate(t *testing.T) {
	e := newRegEnv(t, oauth.RegistrationConfig{NewAgents: "active",
		Scopes: []string{"a", "b"}, GrantTypes: []string{grantCC, grantCIBA}})
	m := e.mustManage(map[string]any{"scope": "a b", "grant_types": []string{grantCC, grantCIBA}})

	// The same registry, served under narrower lists.
	narrow := oauth.RegistrationConfig{Policy: oauth.PolicyOpen, NewAgents: "active", Issuer: e.issuer, Now: e.clock.Now,
		Scopes: []string{"a"}, RateLimit: oauth.RateLimit{PerMinute: 6000, Burst: 1000}}
	reg, err := oauth.NewRegistrar(narrow, e.agents, e.evidence, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	reg.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	put := func(body map[string]any) (int, map[string]any) {
		body["client_id"] = m.id
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+m.path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+m.token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	for name, body := range map[string]map[string]any{
		"scope no longer listed": {"scope": "a b", "grant_types": []string{grantCC}},
		"CIBA no longer listed":  {"scope": "a", "grant_types": []string{grantCC, grantCIBA}},
	} {
		if status, out := put(body); status != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
			t.Errorf("%s: %d %v", name, status, out)
		}
	}
	if status, out := put(map[string]any{"scope": "a", "grant_types": []string{grantCC}}); status != http.StatusOK || out["scope"] != "a" {
		t.Errorf("update within the narrowed lists: %d %v", status, out)
	}
}

func TestRegistrationConfigAllowLists(t *testing.T) {
	const doc = `
registration:
  policy: open
  scopes: [tools.read, tools.call]
  grant_types: [client_credentials, "urn:openid:params:grant-type:ciba"]
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
	if !slices.Equal(c.Scopes, []string{"tools.read", "tools.call"}) || !slices.Equal(c.GrantTypes, []string{grantCC, grantCIBA}) {
		t.Errorf("decoded %+v", c)
	}
	c.Issuer = "https://writ.example.com"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	base := oauth.RegistrationConfig{Policy: oauth.PolicyOpen, Issuer: "https://writ.example.com"}
	for name, edit := range map[string]func(c *oauth.RegistrationConfig){
		"scope with a space": func(c *oauth.RegistrationConfig) { c.Scopes = []string{"a b"} },
		"empty scope":        func(c *oauth.RegistrationConfig) { c.Scopes = []string{""} },
		"scope with a quote": func(c *oauth.RegistrationConfig) { c.Scopes = []string{`a"`} },
		"grant writ never serves": func(c *oauth.RegistrationConfig) {
			c.GrantTypes = []string{"authorization_code"}
		},
		"password grant": func(c *oauth.RegistrationConfig) { c.GrantTypes = []string{grantCC, "password"} },
	} {
		c := base
		edit(&c)
		if err := c.Validate(); !errors.Is(err, oauth.ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", name, err)
		}
	}
}

// A software statement must name the software it vouches for, even when
// no software_id list is configured.
func TestSoftwareStatementNeedsSoftwareID(t *testing.T) {
	signer := newRegKey(t, "ss")
	const iss = "https://software.example.com"
	e := newRegEnv(t, oauth.RegistrationConfig{SoftwareStatements: oauth.SoftwareStatementConfig{
		Issuers: []oauth.StatementIssuer{{Issuer: iss, JWKS: signer.jwks}}}})
	for name, tc := range map[string]struct {
		claims jwt.MapClaims
		code   string
	}{
		"no software_id":    {jwt.MapClaims{"iss": iss}, "invalid_software_statement"},
		"empty software_id": {jwt.MapClaims{"iss": iss, "software_id": ""}, "invalid_software_statement"},
		"software_id":       {jwt.MapClaims{"iss": iss, "software_id": "app"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.register("", map[string]any{"software_statement": signer.sign(t, tc.claims)})
			if tc.code != "" {
				wantRegError(t, r, http.StatusBadRequest, tc.code)
				return
			}
			if r.Status != http.StatusCreated || r.str("software_id") != "app" {
				t.Errorf("register: %d %s", r.Status, r.Raw)
			}
		})
	}
}
