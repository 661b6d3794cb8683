package oauth_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/oauth"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

// hydraToolsDir is the tools module that pins ORY Hydra v2.3.0.
const hydraToolsDir = "../../test/tools/hydra"

var hydraBuild struct {
	once sync.Once
	path string
	err  error
}

// hydraBinary returns Hydra's path: $WRIT_HYDRA, else
// $(go env GOCACHE)/writ-hydra/hydra, built from the tools module when
// missing.
func hydraBinary(t *testing.T) string {
	t.Helper()
	hydraBuild.once.Do(func() {
		path := os.Getenv("WRIT_HYDRA")
		if path == "" {
			out, err := exec.Command("go", "env", "GOCACHE").Output()
			if err != nil {
				hydraBuild.err = fmt.Errorf("go env GOCACHE: %w", err)
				return
			}
			path = filepath.Join(strings.TrimSpace(string(out)), "writ-hydra", "hydra")
		}
		hydraBuild.path = path
		if _, err := os.Stat(path); err == nil {
			return
		}
		fmt.Fprintf(os.Stderr, "building ORY Hydra v2.3.0 into %s (minutes when the module cache is cold)...\n", path)
		start := time.Now()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			hydraBuild.err = err
			return
		}
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		cmd := exec.Command("go", "build", "-tags", "sqlite,sqlite_omit_load_extension", "-o", tmp, "github.com/ory/hydra/v2")
		cmd.Dir = hydraToolsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			hydraBuild.err = fmt.Errorf("build hydra: %w\n%s", err, out)
			return
		}
		hydraBuild.err = os.Rename(tmp, path)
		fmt.Fprintf(os.Stderr, "built ORY Hydra in %s\n", time.Since(start).Round(time.Second))
	})
	if hydraBuild.err != nil {
		t.Fatal(hydraBuild.err)
	}
	return hydraBuild.path
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type hydra struct {
	public, admin string // base URLs
}

// startHydra runs `hydra serve all --dev` on loopback with an in-memory
// database and waits for /health/ready.
func startHydra(t *testing.T) hydra {
	t.Helper()
	bin := hydraBinary(t)
	pub, adm := freePort(t), freePort(t)
	h := hydra{public: "http://127.0.0.1:" + pub, admin: "http://127.0.0.1:" + adm}
	cmd := exec.Command(bin, "serve", "all", "--dev")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"DSN=memory",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT=" + pub,
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT=" + adm,
		"URLS_SELF_ISSUER=" + h.public,
		"URLS_LOGIN=http://127.0.0.1:9/login", "URLS_CONSENT=http://127.0.0.1:9/consent",
		"SECRETS_SYSTEM=" + rand.Text() + rand.Text(),
		"LOG_LEVEL=warn",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("hydra output:\n%s", out.String())
		}
	})

	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("hydra exited: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("hydra not ready within 60s\n%s", out.String())
		case <-ticker.C:
			if resp, err := http.Get(h.admin + "/health/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return h
				}
			}
		}
	}
}

func callJSON(t *testing.T, method, u string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, u, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, u, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
	}
}

// authorize runs a headless authorization-code flow for subject, accepting
// login and consent through the admin API, and returns the tokens.
func (h hydra) authorize(t *testing.T, conf *oauth2.Config, subject string, scopes []string) *oauth2.Token {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(u string) *url.URL {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %s, no redirect", u, resp.Status)
		}
		return loc
	}
	login := next(conf.AuthCodeURL("state-" + rand.Text()))
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	callJSON(t, "PUT", h.admin+"/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(login.Query().Get("login_challenge")),
		map[string]any{"subject": subject}, &accepted)
	consent := next(accepted.RedirectTo)
	callJSON(t, "PUT", h.admin+"/admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(consent.Query().Get("consent_challenge")),
		map[string]any{"grant_scope": scopes}, &accepted)
	cb := next(accepted.RedirectTo)
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", cb.Redacted())
	}
	tok, err := conf.Exchange(t.Context(), code)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type introspection struct {
	Active   bool   `json:"active"`
	Scope    string `json:"scope"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
}

func (h hydra) introspect(t *testing.T, token vaultplugins.Secret) introspection {
	t.Helper()
	resp, err := http.PostForm(h.admin+"/admin/oauth2/introspect", url.Values{"token": {token.Reveal()}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out introspection
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHydra(t *testing.T) {
	if os.Getenv("WRIT_SKIP_HYDRA") == "1" {
		t.Skip("WRIT_SKIP_HYDRA=1: not running the ORY Hydra test")
	}
	h := startHydra(t)
	grant := []string{"offline", "openid", "read", "write"}

	conf := h.registerClient(t, grant)
	first := h.authorize(t, conf, "alice", grant)
	if first.RefreshToken == "" {
		t.Fatal("no refresh token from the authorization-code flow")
	}

	var logs logs
	clk := &clock{now: time.Now()}
	store, err := oauth.Open(t.Context(), oauth.Config{
		DataDir: t.TempDir(), Key: []byte(strings.Repeat("k", oauth.KeySize)), Now: clk.Now,
		Providers: []oauth.Provider{{Name: "hydra", TokenURL: conf.Endpoint.TokenURL, ClientID: conf.ClientID, ClientSecret: vaultplugins.Secret(conf.ClientSecret)}},
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := plugintest.New(t, store) // closes store
	ctx := t.Context()
	rt0 := vaultplugins.Secret(first.RefreshToken)
	if _, err := store.Connect(ctx, "alice", "hydra", rt0, grant); err != nil {
		t.Fatal(err)
	}
	req := func(scopes ...string) vaultplugins.Request {
		return vaultplugins.Request{Backend: "oauth", Ref: "hydra", User: "alice", Scopes: scopes}
	}
	stored := func() vaultplugins.Secret {
		t.Helper()
		rt, err := oauth.StoredRefreshToken(ctx, store, "alice", "hydra")
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	var secrets []vaultplugins.Secret
	secrets = append(secrets, rt0, vaultplugins.Secret(first.AccessToken), vaultplugins.Secret(conf.ClientSecret))

	// Hydra v2.3.0 ignores the scope parameter of a refresh request (fosite
	// v0.49.0 handler/oauth2/flow_refresh.go grants the original scopes), so
	// a narrowed request gets a wider token, which is refused. The refresh
	// still rotated the refresh token, and the new one is stored.
	_, err = b.Fetch(ctx, req("read"))
	if !errors.Is(err, vaultplugins.ErrDenied) || !strings.Contains(err.Error(), "did not narrow") {
		t.Fatalf("narrowed fetch: %v, want ErrDenied (Hydra does not narrow on refresh)", err)
	}
	rt1 := stored()
	if rt1 == rt0 {
		t.Fatal("refresh token not rotated after a refresh")
	}
	secrets = append(secrets, rt1)

	// The whole grant: a real refresh grant, introspected by Hydra.
	cred, err := b.Fetch(ctx, req(grant...))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, cred.Value)
	got := h.introspect(t, cred.Value)
	gotScopes := strings.Fields(got.Scope)
	slices.Sort(gotScopes)
	if !got.Active || got.Subject != "alice" || got.ClientID != conf.ClientID || !slices.Equal(gotScopes, grant) {
		t.Fatalf("introspection = %+v, want active for alice with scopes %q", got, grant)
	}
	rt2 := stored()
	if rt2 == rt1 || cred.Version != "3" {
		t.Fatalf("second rotation: rotated = %v, version %q (want 3)", rt2 != rt1, cred.Version)
	}
	secrets = append(secrets, rt2)

	// Cached: the same token, no refresh.
	again, err := b.Fetch(ctx, req(grant...))
	if err != nil || again.Value != cred.Value || stored() != rt2 {
		t.Fatalf("cached fetch: %v, same token %v, refresh token unchanged %v", err, again.Value == cred.Value, stored() == rt2)
	}

	// Past expiry: a new access token from the rotated refresh token.
	clk.Add(2 * time.Hour)
	renewed, err := b.Fetch(ctx, req(grant...))
	if err != nil || renewed.Value == cred.Value || !h.introspect(t, renewed.Value).Active {
		t.Fatalf("renewed fetch: %v (new token %v)", err, renewed.Value != cred.Value)
	}
	rt3 := stored()
	secrets = append(secrets, renewed.Value, rt3)

	// Revoke the grant at Hydra (RFC 7009); the next uncached Fetch fails.
	h.revoke(t, conf, rt3)
	if h.introspect(t, renewed.Value).Active {
		t.Fatal("access token still active after revoking its refresh token")
	}
	clk.Add(2 * time.Hour)
	_, err = b.Fetch(ctx, req(grant...))
	if !errors.Is(err, vaultplugins.ErrRevoked) || !strings.Contains(err.Error(), "connect the account again") {
		t.Fatalf("after revocation: %v, want ErrRevoked", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s.Reveal()) || strings.Contains(logs.String(), s.Reveal()) {
			t.Fatalf("a token reached the error or the logs:\nerror: %v\nlogs: %s", err, logs.String())
		}
	}
	if accts, _ := store.Accounts(ctx, "alice"); len(accts) != 1 || accts[0].RevokedAt.IsZero() {
		t.Fatalf("Accounts = %+v, want RevokedAt set", accts)
	}
}
