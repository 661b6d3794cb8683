// Package mcp_test runs OAuth and MCP clients that writ did not write
// against the real writ binary: the official MCP TypeScript SDK
// (npm @modelcontextprotocol/sdk), which discovers writ from a 401
// challenge, registers itself and calls a tool with its own OAuth code, and
// panva's openid-client (npm, v6), which registers a private_key_jwt client,
// gets a client_credentials token, exchanges a user's token for a delegated
// one (RFC 8693), introspects and revokes it.
//
// Every request goes through envoyStandIn, a small reverse proxy in this
// package that calls writ's ext_authz gRPC Check exactly as Envoy's ext_authz
// filter would and applies writ's answer. Envoy itself does not run in these
// tests: no package registry this project reaches ships it. Behind the
// proxy is a real MCP server built with the Go MCP SDK.
//
// The node scripts and their pinned dependencies live beside this file;
// `npm ci --prefix test/interop/mcp` installs them (.ci/run does). Without
// node or the installed packages the node-driven tests skip and say why.
package mcp_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/test/writtest"
)

// The tenant the route names and open registration puts agents in.
const tenant = "acme"

// requireNode returns the node binary, or skips the test when node or one of
// the npm packages is missing (CI installs them).
func requireNode(t *testing.T, packages ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join("node_modules", p, "package.json")); err != nil {
			t.Skipf("%s is not installed: run npm ci --prefix test/interop/mcp", p)
		}
	}
	return node
}

// env is a running writ with open registration, a real MCP server, and the
// Envoy stand-in routing resource to the MCP server through writ's Check.
type env struct {
	w        *writtest.Writ
	idp      *writtest.Issuer
	proxy    *envoyStandIn
	up       *upstream
	resource string // the MCP endpoint: the resource id, the route's resource, the tokens' aud
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	up := startUpstream(t)
	proxy := newEnvoyStandIn(t, up.srv.URL)
	resource := proxy.URL() + "/mcp"
	policies, err := filepath.Abs(filepath.Join("testdata", "policies"))
	if err != nil {
		t.Fatal(err)
	}
	// issuer is left to its default, http:// + the bound API address: the
	// port is only known once writ has bound it.
	cfg := fmt.Sprintf(`policies: %s
registration:
  policy: open
  new_agents: active
  tenant: %s
  metadata_documents: false
resources:
  - id: %s
    name: Echo MCP server
    scopes: [tools.call]
`, policies, tenant, resource)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}, Config: cfg})
	proxy.start(t, w.GRPC, map[string]string{"resource": resource, "tenant": tenant, "mcp": "true"})
	return &env{w: w, idp: idp, proxy: proxy, up: up, resource: resource}
}

// resourceMetadataURL is the RFC 9728 metadata URL writ serves for the resource.
func (e *env) resourceMetadataURL() string {
	return e.w.Issuer + "/.well-known/oauth-protected-resource/" + strings.TrimPrefix(e.resource, "http://")
}

// TestPolicy runs the Rego tests of the policy these tests run writ with.
func TestPolicy(t *testing.T) {
	w := &writtest.Writ{Bin: writtest.Build(t)}
	out, err := w.Run(t, "policy", "test", filepath.Join("testdata", "policies"))
	if err != nil || !strings.Contains(out, "6 passed, 0 failed") {
		t.Fatalf("writ policy test: %v\n%s", err, out)
	}
}

// TestChallengeAndDiscovery: a call without a token is refused by writ
// through the proxy with a challenge naming the resource's RFC 9728
// metadata, which names writ as the authorization server, whose RFC 8414
// metadata lists its endpoints; a user's delegated token from the trusted
// issuer reaches the MCP server, which sees writ's token, never the
// caller's.
func TestChallengeAndDiscovery(t *testing.T) {
	e := newEnv(t)

	ex, body := e.callEcho(t, "", "no token")
	if ex.Status != http.StatusUnauthorized || ex.Allowed ||
		!strings.HasPrefix(ex.Challenge, "Bearer") || !strings.Contains(ex.Challenge, `resource_metadata="`+e.resourceMetadataURL()+`"`) {
		t.Fatalf("no token: %d %s, challenge %q; want 401 naming %s", ex.Status, body, ex.Challenge, e.resourceMetadataURL())
	}
	if len(e.up.seen()) != 0 {
		t.Errorf("a refused call reached the MCP server")
	}

	resp, err := http.Get(e.resourceMetadataURL())
	if err != nil {
		t.Fatal(err)
	}
	prm := decodeJSON(t, resp, http.StatusOK)
	if prm["resource"] != e.resource || !listIs(prm["authorization_servers"], e.w.Issuer) || !listIs(prm["scopes_supported"], "tools.call") {
		t.Errorf("protected-resource metadata: %v", prm)
	}

	resp, err = http.Get(e.w.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	as := decodeJSON(t, resp, http.StatusOK)
	for k, want := range map[string]string{
		"issuer": e.w.Issuer, "token_endpoint": e.w.Issuer + "/token", "registration_endpoint": e.w.Issuer + "/register",
		"authorization_endpoint": e.w.Issuer + "/authorize", "introspection_endpoint": e.w.Issuer + "/introspect",
		"revocation_endpoint": e.w.Issuer + "/revoke",
	} {
		if as[k] != want {
			t.Errorf("authorization-server metadata %s = %v, want %s", k, as[k], want)
		}
	}
	if rt, ok := as["response_types_supported"].([]any); !ok || len(rt) != 0 {
		t.Errorf("response_types_supported = %#v, want []", as["response_types_supported"])
	}
	for _, g := range []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"} {
		if l, _ := as["grant_types_supported"].([]any); !slices.Contains(l, any(g)) {
			t.Errorf("grant_types_supported = %v, lacks %s", as["grant_types_supported"], g)
		}
	}

	inbound := e.idp.Delegated(t, "alice", "research-bot", tenant)
	ex, body = e.callEcho(t, inbound, "delegated by the trusted issuer")
	if ex.Status != http.StatusOK || !ex.Allowed || !strings.Contains(body, `"text":"delegated by the trusted issuer"`) {
		t.Fatalf("delegated token: %d %s\nwrit stderr:\n%s", ex.Status, body, e.w.Stderr())
	}
	seen := e.up.seen()
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "Bearer ") || strings.TrimPrefix(seen[0], "Bearer ") == inbound {
		t.Errorf("the MCP server received %d Authorization headers; want one writ token, not the caller's", len(seen))
	}
}

// listIs reports whether v is a JSON list holding exactly want.
func listIs(v any, want ...string) bool {
	l, ok := v.([]any)
	if !ok || len(l) != len(want) {
		return false
	}
	for i := range l {
		if l[i] != want[i] {
			return false
		}
	}
	return true
}

// TestRegistrationResponseOmitsUnsetFields: both official MCP SDKs reject a
// registration response holding null, "" or {} for a field; writ's omit
// unset fields and always carry redirect_uris as a list, on POST /register
// and on the RFC 7592 read.
func TestRegistrationResponseOmitsUnsetFields(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name     string
		metadata map[string]any
		want     []string // fields that must be present
	}{
		{"client_secret_basic", map[string]any{
			"client_name": "raw secret client", "redirect_uris": []string{}, "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "client_secret_basic",
		}, []string{"client_id", "client_secret", "registration_access_token", "registration_client_uri", "redirect_uris"}},
		{"private_key_jwt", map[string]any{
			"client_name": "raw key client", "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "private_key_jwt",
			"jwks":                       map[string]any{"keys": []any{publicJWK(t)}},
		}, []string{"client_id", "registration_access_token", "registration_client_uri", "redirect_uris", "jwks"}},
		{"minimal", map[string]any{"grant_types": []string{"client_credentials"}},
			[]string{"client_id", "registration_access_token", "registration_client_uri", "redirect_uris"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(tc.metadata)
			resp, err := http.Post(e.w.Issuer+"/register", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got := decodeJSON(t, resp, http.StatusCreated)
			checkPresentAndSet(t, "POST /register", got, tc.want)
			if _, ok := got["redirect_uris"].([]any); !ok {
				t.Errorf("redirect_uris = %#v, want a list", got["redirect_uris"])
			}

			uri, _ := got["registration_client_uri"].(string)
			rat, _ := got["registration_access_token"].(string)
			if uri == "" || rat == "" {
				t.Fatalf("no registration_client_uri or registration_access_token in %v", keys(got))
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, uri, nil)
			req.Header.Set("Authorization", "Bearer "+rat)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			read := decodeJSON(t, resp, http.StatusOK)
			checkPresentAndSet(t, "GET "+uri, read, slices.DeleteFunc(slices.Clone(tc.want), func(k string) bool {
				return k == "client_secret" || k == "registration_access_token" // RFC 7592 §3 lets a read omit or rotate them
			}))
			if read["client_id"] != got["client_id"] {
				t.Errorf("read client_id %v, registered %v", read["client_id"], got["client_id"])
			}
		})
	}
}

// checkPresentAndSet fails on any member, at any depth, that is null, "" or
// {}, and on a missing wanted member.
func checkPresentAndSet(t *testing.T, what string, doc map[string]any, want []string) {
	t.Helper()
	for _, k := range want {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s: no %s (members: %v)", what, k, keys(doc))
		}
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case nil:
			t.Errorf("%s: %s is null", what, path)
		case string:
			if v == "" {
				t.Errorf(`%s: %s is ""`, what, path)
			}
		case map[string]any:
			if len(v) == 0 {
				t.Errorf("%s: %s is {}", what, path)
			}
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	for k, v := range doc {
		walk(k, v)
	}
}

// TestMCPTypeScriptSDK: the official MCP TypeScript SDK, given nothing but
// the MCP URL, finds writ from the 401 challenge, registers itself, gets a
// token and calls the echo tool through the proxy; writ allows the call and
// records it; after `writ agents suspend` the same client, reusing its saved
// registration and token, is refused with 403.
func TestMCPTypeScriptSDK(t *testing.T) {
	node := requireNode(t, "@modelcontextprotocol/sdk")
	e := newEnv(t)
	state := filepath.Join(t.TempDir(), "mcp-client-state.json")

	type result struct {
		ClientID   string `json:"client_id"`
		Scope      string `json:"scope"`
		ToolResult *struct {
			Content []struct{ Type, Text string } `json:"content"`
			IsError bool                          `json:"isError"`
		} `json:"tool_result"`
		Errors []string `json:"errors"`
		Error  string   `json:"error"`
		Status int      `json:"status"`
	}
	run := func(text string) result {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), node, "mcp-client.mjs")
		cmd.Env = append(os.Environ(), "WRIT_MCP_URL="+e.resource, "WRIT_MCP_STATE="+state, "WRIT_MCP_TEXT="+text)
		cmd.WaitDelay = 10 * time.Second
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node mcp-client.mjs: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("mcp-client.mjs printed %q: %v\nstderr: %s", out, err, stderr.String())
		}
		return r
	}

	const text = "hello from the MCP TypeScript SDK"
	first := run(text)
	if first.Error != "" {
		t.Fatalf("the SDK's flow failed: %s (status %d)\nwrit stderr:\n%s", first.Error, first.Status, e.w.Stderr())
	}
	if first.ClientID == "" || first.ToolResult == nil || first.ToolResult.IsError ||
		len(first.ToolResult.Content) != 1 || first.ToolResult.Content[0].Text != text {
		t.Fatalf("the SDK's run: %+v", first)
	}
	t.Logf("MCP SDK registered as %s (scope %q); errors it reported without failing: %q", first.ClientID, first.Scope, first.Errors)

	// The flow started with writ's 401 challenge naming the resource's metadata.
	ex := e.proxy.exchanges()
	if len(ex) == 0 {
		t.Fatal("no request went through the proxy")
	}
	if ex[0].Status != http.StatusUnauthorized || !strings.Contains(ex[0].Challenge, `resource_metadata="`+e.resourceMetadataURL()+`"`) {
		t.Errorf("first exchange %+v, want a 401 whose challenge names %s", ex[0], e.resourceMetadataURL())
	}
	call := findExchange(ex, func(x exchange) bool { return x.RPCMethod == "tools/call" && x.Allowed })
	if call == nil || call.Status != http.StatusOK || call.DecisionID == "" {
		t.Fatalf("no allowed tools/call in %+v", ex)
	}

	// No token passthrough: upstream saw writ's tokens, never the agent's.
	saved := readState(t, state)
	for _, a := range e.up.seen() {
		if !strings.HasPrefix(a, "Bearer ") || strings.TrimPrefix(a, "Bearer ") == saved.Tokens.AccessToken {
			t.Errorf("upstream received Authorization %.20q..., want a writ token, not the agent's", a)
		}
	}

	// The agent is in the registry, active, in the open registration's tenant.
	out, err := e.w.Run(t, "agents", "list", "--data-dir", e.w.DataDir)
	if err != nil {
		t.Fatalf("agents list: %v\n%s", err, out)
	}
	if !hasAgentRow(out, first.ClientID, "active", tenant) {
		t.Errorf("agents list has no active %s agent %s:\n%s", tenant, first.ClientID, out)
	}

	// The kill switch.
	out, err = e.w.Run(t, "agents", "suspend", "--data-dir", e.w.DataDir, "--as", "operator@example.com", "--reason", "interop kill switch", first.ClientID)
	if err != nil {
		t.Fatalf("agents suspend: %v\n%s", err, out)
	}
	awaitStatus(t, func() int {
		ex, _ := e.callEcho(t, saved.Tokens.AccessToken, "are you there?")
		return ex.Status
	}, http.StatusForbidden)
	second := run("after the suspension")
	if second.Status != http.StatusForbidden || second.ClientID != first.ClientID || second.ToolResult != nil {
		t.Errorf("second run after suspend: %+v, want a 403 for the same client", second)
	}
	ex = e.proxy.exchanges()
	refused := ex[len(ex)-1]
	if refused.Status != http.StatusForbidden || refused.Allowed || refused.DecisionID == "" {
		t.Errorf("last exchange %+v, want writ's 403", refused)
	}

	if err := e.w.Terminate(t); err != nil {
		t.Fatalf("writ exited with %v\n%s", err, e.w.Stderr())
	}
	rec := auditShow(t, e.w, call.DecisionID)
	if rec.Outcome != "allow" || rec.Agent != first.ClientID || rec.Tenant != tenant || rec.Request.MCPName != "echo" {
		t.Errorf("evidence of the tool call: %+v", rec)
	}
	rec = auditShow(t, e.w, refused.DecisionID)
	if rec.Outcome != "deny" || !strings.Contains(rec.Reason, "suspended") || rec.Agent != first.ClientID {
		t.Errorf("evidence of the refused call: %+v", rec)
	}
}

// TestOpenIDClient: panva's openid-client registers a private_key_jwt client,
// gets a client_credentials token and exchanges a user's token for a
// delegated one; the delegated token is allowed through the proxy with
// evidence naming user and agent, introspects as active, and once revoked
// is refused with 401.
func TestOpenIDClient(t *testing.T) {
	node := requireNode(t, "openid-client")
	e := newEnv(t)

	cmd := exec.CommandContext(t.Context(), node, "openid-client.mjs")
	cmd.Env = append(os.Environ(), "WRIT_ISSUER="+e.w.Issuer, "WRIT_RESOURCE="+e.resource)
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tell := func(v any) {
		b, _ := json.Marshal(v)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			t.Errorf("writing to openid-client.mjs: %v", err)
		}
	}

	type line struct {
		Step                 string         `json:"step"`
		Issuer               string         `json:"issuer"`
		TokenEndpoint        string         `json:"token_endpoint"`
		RegistrationEndpoint string         `json:"registration_endpoint"`
		IntrospectionEnd     string         `json:"introspection_endpoint"`
		RevocationEndpoint   string         `json:"revocation_endpoint"`
		ClientID             string         `json:"client_id"`
		AuthMethod           string         `json:"token_endpoint_auth_method"`
		AccessToken          string         `json:"access_token"`
		IssuedTokenType      string         `json:"issued_token_type"`
		Claims               map[string]any `json:"claims"`
		Response             map[string]any `json:"response"`
		Error                string         `json:"error"`
		OAuthError           string         `json:"oauth_error"`
		Description          string         `json:"description"`
	}
	var clientID, delegated, delegatedDecision, ownDecision string
	seen := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("openid-client.mjs wrote %q", sc.Text())
		}
		seen[l.Step] = true
		t.Logf("openid-client: %s", l.Step)
		switch l.Step {
		case "discovered":
			for got, want := range map[string]string{
				l.Issuer: e.w.Issuer, l.TokenEndpoint: e.w.Issuer + "/token", l.RegistrationEndpoint: e.w.Issuer + "/register",
				l.IntrospectionEnd: e.w.Issuer + "/introspect", l.RevocationEndpoint: e.w.Issuer + "/revoke",
			} {
				if got != want {
					t.Errorf("discovered %q, want %q", got, want)
				}
			}
		case "registered":
			clientID = l.ClientID
			if clientID == "" || l.AuthMethod != "private_key_jwt" {
				t.Errorf("registered %q with %q", clientID, l.AuthMethod)
			}
			// The user's token names this agent as the one allowed to act
			// for them.
			tell(map[string]string{"subject_token": e.idp.Sign(t, jwt.MapClaims{
				"sub": "alice", "tenant": tenant, "scope": "tools.call", "may_act": map[string]any{"sub": clientID},
			})})
		case "client_credentials":
			checkClaims(t, "client_credentials token", l.Claims, map[string]any{
				"iss": e.w.Issuer, "sub": clientID, "client_id": clientID, "aud": e.resource, "scope": "tools.call", "tenant": tenant,
			})
			if _, ok := l.Claims["act"]; ok {
				t.Errorf("the agent's own token has act: %v", l.Claims["act"])
			}
			ex, body := e.callEcho(t, l.AccessToken, "the agent as itself")
			if ex.Status != http.StatusOK || !strings.Contains(body, "the agent as itself") {
				t.Errorf("client_credentials token at the MCP endpoint: %d %s", ex.Status, body)
			}
			ownDecision = ex.DecisionID
		case "exchanged":
			checkClaims(t, "exchanged token", l.Claims, map[string]any{
				"iss": e.w.Issuer, "sub": "alice", "aud": e.resource, "scope": "tools.call", "tenant": tenant,
			})
			if act, _ := l.Claims["act"].(map[string]any); act["sub"] != clientID {
				t.Errorf("exchanged token act = %v, want sub %s", l.Claims["act"], clientID)
			}
			if l.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" {
				t.Errorf("issued_token_type %q", l.IssuedTokenType)
			}
			ex, body := e.callEcho(t, l.AccessToken, "on behalf of alice")
			if ex.Status != http.StatusOK || !strings.Contains(body, "on behalf of alice") {
				t.Errorf("exchanged token at the MCP endpoint: %d %s", ex.Status, body)
			}
			delegatedDecision, delegated = ex.DecisionID, l.AccessToken
			tell(map[string]string{"next": "introspect"})
		case "introspected":
			if l.Response["active"] != true || l.Response["sub"] != "alice" {
				t.Errorf("introspection of the exchanged token: %v", l.Response)
			}
		case "revoked":
			ex, body := e.callEcho(t, delegated, "after revocation")
			if ex.Status != http.StatusUnauthorized || !strings.Contains(ex.Challenge, `error="invalid_token"`) {
				t.Errorf("revoked token at the MCP endpoint: %d %s, challenge %q; want 401 invalid_token", ex.Status, body, ex.Challenge)
			}
		case "introspected_after_revocation":
			if l.Response["active"] != false || len(l.Response) != 1 {
				t.Errorf("introspection after revocation: %v, want only active false", l.Response)
			}
		case "failed":
			t.Errorf("openid-client.mjs failed: %s (%s: %s)\nwrit stderr:\n%s", l.Error, l.OAuthError, l.Description, e.w.Stderr())
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil && !seen["failed"] {
		t.Fatalf("node openid-client.mjs: %v\n%s", err, stderr.String())
	}
	for _, s := range []string{"discovered", "registered", "client_credentials", "exchanged", "introspected", "revoked", "introspected_after_revocation", "done"} {
		if !seen[s] {
			t.Errorf("openid-client.mjs never reported %q", s)
		}
	}
	if t.Failed() {
		return
	}

	if err := e.w.Terminate(t); err != nil {
		t.Fatalf("writ exited with %v\n%s", err, e.w.Stderr())
	}
	rec := auditShow(t, e.w, delegatedDecision)
	if rec.Outcome != "allow" || rec.User != "alice" || rec.Agent != clientID || rec.Tenant != tenant || rec.Request.MCPName != "echo" {
		t.Errorf("evidence of the delegated call: %+v", rec)
	}
	rec = auditShow(t, e.w, ownDecision)
	if rec.Outcome != "allow" || rec.User != "" || rec.Agent != clientID {
		t.Errorf("evidence of the agent's own call: %+v", rec)
	}
}

// checkClaims compares claims; aud may be a string or a one-element list,
// scope a space-separated list that must hold the wanted scope.
func checkClaims(t *testing.T, what string, claims map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got := claims[k]
		switch k {
		case "aud":
			if l, ok := got.([]any); ok && len(l) == 1 {
				got = l[0]
			}
		case "scope":
			if s, ok := got.(string); ok && slices.Contains(strings.Fields(s), w.(string)) {
				got = w
			}
		}
		if got != w {
			t.Errorf("%s: %s = %v, want %v", what, k, claims[k], w)
		}
	}
}

// callEcho sends an MCP tools/call of echo through the proxy with token, as
// a plain HTTP client, and returns the exchange as the proxy recorded it
// (status, writ's decision id, challenge) and the body the client read.
func (e *env) callEcho(t *testing.T, token, text string) (exchange, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "echo", "arguments": map[string]string{"text": text}}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.resource, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	requestID := rand.Text()
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ex := findExchange(e.proxy.exchanges(), func(x exchange) bool { return x.RequestID == requestID })
	if ex == nil {
		t.Fatalf("the proxy has no exchange with x-request-id %s", requestID)
	}
	if ex.Status != resp.StatusCode {
		t.Errorf("the proxy recorded status %d, the client got %d", ex.Status, resp.StatusCode)
	}
	return *ex, string(b)
}

// awaitStatus calls check until it returns want. A `writ agents suspend`
// run in another process reaches a running writ on its next registry
// refresh (every second by default), and writ gives no signal when it has:
// this is the one place the tests poll, on a ticker, for at most 15 s.
func awaitStatus(t *testing.T, check func() int, want int) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	last := check()
	for last != want {
		select {
		case <-tick.C:
			last = check()
		case <-deadline:
			t.Fatalf("status stayed %d, want %d", last, want)
		}
	}
}

type evidence struct {
	DecisionID string `json:"decision_id"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	User       string `json:"user"`
	Agent      string `json:"agent"`
	Tenant     string `json:"tenant"`
	Request    struct {
		MCPMethod string `json:"mcp_method"`
		MCPName   string `json:"mcp_name"`
	} `json:"request"`
}

// auditShow reads one evidence record back with `writ audit show`.
func auditShow(t *testing.T, w *writtest.Writ, decisionID string) evidence {
	t.Helper()
	out, err := w.Run(t, "audit", "show", "--data-dir", w.DataDir, decisionID)
	if err != nil {
		t.Fatalf("audit show %s: %v\n%s", decisionID, err, out)
	}
	var rec evidence
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("audit show output: %v\n%s", err, out)
	}
	t.Logf("evidence %s: %+v", decisionID, rec)
	if rec.DecisionID != decisionID {
		t.Fatalf("audit show %s returned %s", decisionID, rec.DecisionID)
	}
	return rec
}

// hasAgentRow finds the `writ agents list` row of clientID with its status
// and tenant.
func hasAgentRow(list, clientID, status, tenant string) bool {
	for _, row := range strings.Split(list, "\n") {
		f := strings.Fields(row)
		if len(f) > 2 && f[0] == clientID && f[1] == status && slices.Contains(f, tenant) {
			return true
		}
	}
	return false
}

type savedState struct {
	Client struct {
		ClientID string `json:"client_id"`
	} `json:"client"`
	Tokens struct {
		AccessToken string `json:"access_token"`
	} `json:"tokens"`
}

func readState(t *testing.T, path string) savedState {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s savedState
	if err := json.Unmarshal(raw, &s); err != nil || s.Tokens.AccessToken == "" {
		t.Fatalf("saved client state: %v", err)
	}
	return s
}

func findExchange(ex []exchange, f func(exchange) bool) *exchange {
	for i := range ex {
		if f(ex[i]) {
			return &ex[i]
		}
	}
	return nil
}

func decodeJSON(t *testing.T, resp *http.Response, want int) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return doc
}

// publicJWK is the public JWK of a fresh P-256 key.
func publicJWK(t *testing.T) json.RawMessage {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "raw-key-1", ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jwk.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
