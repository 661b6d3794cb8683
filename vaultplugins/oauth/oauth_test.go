package oauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/oauth"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

const (
	clientID     = "writ"
	clientSecret = "client-secret-SHOULD-NOT-LEAK"
)

// tokenServer is an OAuth 2.0 token endpoint that rotates refresh tokens and
// treats a reused one as invalid_grant, as ORY Hydra does.
type tokenServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	live     map[string]string // refresh token → user
	issued   []string          // every token issued, to look for in logs and errors
	scopes   []string          // scope parameter of each request
	requests map[string]int    // refresh requests per user

	expiresIn int    // seconds; 0 omits expires_in
	rotate    bool   // issue a new refresh token on every refresh
	wider     string // when set, the granted scope returned regardless of the request
	tokenType string // default "bearer"
	fail      func(w http.ResponseWriter) bool
	hold      chan struct{} // when set, each refresh waits for it to close
	total     atomic.Int64
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{t: t, live: map[string]string{}, requests: map[string]int{}, expiresIn: 3600, rotate: true, tokenType: "bearer"}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

// grant issues an initial refresh token for user, as an authorization-code
// flow would.
func (ts *tokenServer) grant(user string) vaultplugins.Secret {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rt := "rt-" + user + "-" + rand.Text()
	ts.live[rt] = user
	ts.issued = append(ts.issued, rt)
	return vaultplugins.Secret(rt)
}

func (ts *tokenServer) count(user string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests[user]
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.total.Add(1)
	if ts.hold != nil {
		<-ts.hold
	}
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || !ok || id != clientID || secret != clientSecret {
		writeJSON(w, 401, map[string]any{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		writeJSON(w, 400, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	if ts.fail != nil && ts.fail(w) {
		return
	}
	rt := r.PostForm.Get("refresh_token")
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.scopes = append(ts.scopes, r.PostForm.Get("scope"))
	user, ok := ts.live[rt]
	if !ok {
		// The description echoes the token, as a careless server might.
		writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "refresh token " + rt + " is not active"})
		return
	}
	ts.requests[user]++
	body := map[string]any{"access_token": "at-" + user + "-" + rand.Text(), "token_type": ts.tokenType}
	if ts.expiresIn > 0 {
		body["expires_in"] = ts.expiresIn
	}
	if s := r.PostForm.Get("scope"); s != "" {
		body["scope"] = s
	}
	if ts.wider != "" {
		body["scope"] = ts.wider
	}
	if ts.rotate {
		delete(ts.live, rt)
		next := "rt-" + user + "-" + rand.Text()
		ts.live[next] = user
		body["refresh_token"] = next
		ts.issued = append(ts.issued, next)
	}
	ts.issued = append(ts.issued, body["access_token"].(string))
	writeJSON(w, 200, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// clock is an injected clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logs collects every log line; tests look for secrets in it.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

type fixture struct {
	ts    *tokenServer
	store *oauth.Store
	clock *clock
	logs  *logs
	dir   string
	key   []byte
}

func newFixture(t *testing.T, adjust func(*oauth.Provider)) *fixture {
	t.Helper()
	f := &fixture{ts: newTokenServer(t), clock: &clock{now: time.Unix(1_800_000_000, 0)}, logs: &logs{}, dir: t.TempDir(), key: make([]byte, oauth.KeySize)}
	rand.Read(f.key)
	p := oauth.Provider{Name: "example", TokenURL: f.ts.srv.URL + "/token", ClientID: clientID, ClientSecret: clientSecret}
	if adjust != nil {
		adjust(&p)
	}
	s, err := oauth.Open(t.Context(), oauth.Config{
		DataDir: f.dir, Key: f.key, Providers: []oauth.Provider{p},
		Now: f.clock.Now, Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	f.store = s
	t.Cleanup(func() { f.assertNoSecrets(t, f.logs.String(), "logs") })
	return f
}

// connect grants user a refresh token and connects it.
func (f *fixture) connect(t *testing.T, user string, scopes ...string) vaultplugins.Secret {
	t.Helper()
	rt := f.ts.grant(user)
	if _, err := f.store.Connect(t.Context(), user, "example", rt, scopes); err != nil {
		t.Fatal(err)
	}
	return rt
}

// assertNoSecrets fails when text holds any token the server issued, the
// client secret or the key.
var tokenShape = regexp.MustCompile(`(at|rt)-[A-Za-z0-9_.-]*-[A-Z2-7]{26}`)

func (f *fixture) assertNoSecrets(t *testing.T, text, where string) {
	t.Helper()
	f.ts.mu.Lock()
	defer f.ts.mu.Unlock()
	for _, s := range append([]string{clientSecret, string(f.key)}, f.ts.issued...) {
		if strings.Contains(text, s) {
			t.Errorf("%s hold a secret: %s", where, text)
			return
		}
	}
	// The token server's tokens are "at-USER-" or "rt-USER-" and 26
	// characters of rand.Text; jti and key ids (base64url) cannot match.
	if tokenShape.MatchString(text) {
		t.Errorf("%s hold a token fragment: %s", where, tokenShape.FindString(text))
	}
}

func fetch(t *testing.T, b vaultplugins.Backend, user string, scopes ...string) (vaultplugins.Credential, error) {
	t.Helper()
	return b.Fetch(t.Context(), vaultplugins.Request{Backend: "oauth", Ref: "example", User: user, Scopes: scopes})
}

func TestFetchThroughPlugin(t *testing.T) {
	f := newFixture(t, nil)
	f.connect(t, "alice", "read", "write")
	b := plugintest.New(t, f.store)
	cred, err := fetch(t, b, "alice", "read")
	if err != nil {
		t.Fatal(err)
	}
	header, value, err := cred.Render()
	if err != nil || header != "Authorization" || !strings.HasPrefix(value.Reveal(), "Bearer at-alice-") {
		t.Fatalf("Render = %q %q %v", header, value.Reveal(), err)
	}
	if want := f.clock.Now().Add(time.Hour); !cred.ExpiresAt.Equal(want) || cred.Version != "2" {
		t.Fatalf("ExpiresAt %v (want %v), Version %q (want 2: one rotation)", cred.ExpiresAt, want, cred.Version)
	}
	if diff := cmp.Diff([]string{"read"}, f.ts.scopes); diff != "" {
		t.Fatalf("scope parameters sent (-want +got):\n%s", diff)
	}
	// The long reference form names the user.
	long, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "users/alice/example", Scopes: []string{"read"}})
	if err != nil || long.Value != cred.Value {
		t.Fatalf("users/alice/example: %v (same cached token: %v)", err, long.Value == cred.Value)
	}
	d, err := b.Describe(t.Context())
	if err != nil || d.Name != "oauth" {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
}

func TestSingleflight(t *testing.T) {
	f := newFixture(t, nil)
	users := make([]string, 10)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
		f.connect(t, users[i], "read")
	}
	b := plugintest.New(t, f.store)
	start := make(chan struct{})
	errs := make(chan error, 1000)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			<-start
			cred, err := fetch(t, b, users[i%10], "read")
			if err == nil && !strings.HasPrefix(cred.Value.Reveal(), "at-"+users[i%10]+"-") {
				err = fmt.Errorf("user %s got another user's token", users[i%10])
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if n := f.ts.count(u); n != 1 {
			t.Errorf("%s: %d refresh requests, want exactly 1", u, n)
		}
	}
	if n := f.ts.total.Load(); n != 10 {
		t.Errorf("token endpoint saw %d requests, want 10", n)
	}
}

func TestExpiryAndCaching(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn int
		steps     []time.Duration // clock advance before each Fetch after the first
		want      []int           // cumulative refreshes after each Fetch after the first
	}{
		// 1h token, 1m margin: served until 59m.
		{"one hour", 3600, []time.Duration{58*time.Minute + 59*time.Second, time.Second, time.Minute}, []int{1, 2, 2}},
		// 60s token: the margin shrinks to half the lifetime.
		{"one minute", 60, []time.Duration{29 * time.Second, time.Second}, []int{1, 2}},
		// No expires_in: never cached.
		{"unknown expiry", 0, []time.Duration{0, 0}, []int{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.ts.expiresIn = tc.expiresIn
			f.connect(t, "alice", "read")
			first, err := fetch(t, f.store, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.steps {
				f.clock.Add(d)
				cred, err := fetch(t, f.store, "alice")
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if n := f.ts.count("alice"); n != tc.want[i] {
					t.Fatalf("step %d: %d refreshes, want %d", i, n, tc.want[i])
				}
				if (cred.Value == first.Value) != (tc.want[i] == 1) {
					t.Fatalf("step %d: token reused = %v, want %v", i, cred.Value == first.Value, tc.want[i] == 1)
				}
			}
		})
	}
}

func TestScopesCachedSeparately(t *testing.T) {
	f := newFixture(t, nil)
	f.connect(t, "alice", "read", "write")
	for _, scopes := range [][]string{{"read"}, {"write", "read"}, {"read", "write"}, {"read", "read"}, nil} {
		if _, err := fetch(t, f.store, "alice", scopes...); err != nil {
			t.Fatal(err)
		}
	}
	// {"read"} and {"read","read"} share a key; the two orders of read+write
	// share one; nil is the whole grant.
	if diff := cmp.Diff([]string{"read", "read write", ""}, f.ts.scopes); diff != "" {
		t.Fatalf("scope parameters (-want +got):\n%s", diff)
	}
}

func TestRotation(t *testing.T) {
	f := newFixture(t, nil)
	rt0 := f.connect(t, "alice", "read")
	if _, err := fetch(t, f.store, "alice"); err != nil {
		t.Fatal(err)
	}
	rt1, err := oauth.StoredRefreshToken(t.Context(), f.store, "alice", "example")
	if err != nil || rt1 == rt0 || !f.ts.isLive(rt1) || f.ts.isLive(rt0) {
		t.Fatalf("after refresh: stored token rotated = %v, live = %v, %v", rt1 != rt0, f.ts.isLive(rt1), err)
	}
	f.clock.Add(2 * time.Hour)
	if _, err := fetch(t, f.store, "alice"); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	accts, err := f.store.Accounts(t.Context(), "alice")
	if err != nil || len(accts) != 1 || accts[0].Version != 3 {
		t.Fatalf("Accounts = %+v, %v; want version 3", accts, err)
	}

	// A provider that does not rotate: the stored token stays.
	g := newFixture(t, nil)
	g.ts.rotate = false
	rt := g.connect(t, "bob")
	cred, err := fetch(t, g.store, "bob")
	if stored, _ := oauth.StoredRefreshToken(t.Context(), g.store, "bob", "example"); err != nil || stored != rt || cred.Version != "1" {
		t.Fatalf("no rotation: %v, stored unchanged = %v, version %q", err, stored == rt, cred.Version)
	}
}

func (ts *tokenServer) isLive(rt vaultplugins.Secret) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, ok := ts.live[rt.Reveal()]
	return ok
}

// Different scope sets for one account refresh one at a time: with a
// rotating provider that treats reuse as invalid_grant, concurrent
// refreshes from the same stored token would revoke the account.
func TestConcurrentScopeSetsSerialize(t *testing.T) {
	f := newFixture(t, nil)
	f.connect(t, "alice", "a", "b", "c", "d")
	sets := [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"a", "b"}, {"c", "d"}, nil}
	errs := make(chan error, len(sets))
	for _, s := range sets {
		go func() { _, err := fetch(t, f.store, "alice", s...); errs <- err }()
	}
	for range sets {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := f.ts.count("alice"); n != len(sets) {
		t.Fatalf("%d refreshes, want %d", n, len(sets))
	}
}

func TestRevoked(t *testing.T) {
	f := newFixture(t, nil)
	f.connect(t, "alice", "read")
	b := plugintest.New(t, f.store)
	if _, err := fetch(t, b, "alice"); err != nil {
		t.Fatal(err)
	}
	// The provider revokes the grant: every refresh token is refused.
	f.ts.mu.Lock()
	clear(f.ts.live)
	f.ts.mu.Unlock()
	// Cached tokens serve until they near expiry.
	if _, err := fetch(t, b, "alice"); err != nil {
		t.Fatalf("cached: %v", err)
	}
	f.clock.Add(2 * time.Hour)
	before := f.ts.total.Load()
	_, err := fetch(t, b, "alice")
	if !errors.Is(err, vaultplugins.ErrRevoked) || !strings.Contains(err.Error(), "connect the account again") {
		t.Fatalf("revoked grant: %v, want ErrRevoked with advice", err)
	}
	f.assertNoSecrets(t, err.Error(), "error")
	if strings.Contains(err.Error(), "not active") {
		t.Fatalf("provider's description leaked into the error: %v", err)
	}
	// Remembered: no further calls to the provider.
	if _, err := fetch(t, b, "alice", "read"); !errors.Is(err, vaultplugins.ErrRevoked) || f.ts.total.Load() != before+1 {
		t.Fatalf("second fetch: %v, %d provider calls (want 1)", err, f.ts.total.Load()-before)
	}
	accts, _ := f.store.Accounts(t.Context(), "")
	if len(accts) != 1 || accts[0].RevokedAt.IsZero() {
		t.Fatalf("Accounts = %+v, want RevokedAt set", accts)
	}
	// Connecting again restores the account.
	f.connect(t, "alice", "read")
	if _, err := fetch(t, b, "alice"); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	status := func(code int, body string) func(w http.ResponseWriter) bool {
		return func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			w.Write([]byte(body))
			return true
		}
	}
	for _, tc := range []struct {
		name   string
		adjust func(*fixture)
		scopes []string
		want   error
	}{
		{"server error", func(f *fixture) { f.ts.fail = status(503, `{"error":"temporarily_unavailable"}`) }, nil, vaultplugins.ErrUnavailable},
		{"bad client", func(f *fixture) {
			f.ts.fail = status(401, `{"error":"invalid_client","error_description":"`+clientSecret+`"}`)
		}, nil, vaultplugins.ErrBackend},
		{"invalid scope", func(f *fixture) { f.ts.fail = status(400, `{"error":"invalid_scope"}`) }, []string{"read"}, vaultplugins.ErrDenied},
		{"no access token", func(f *fixture) { f.ts.fail = status(200, `{"token_type":"bearer"}`) }, nil, vaultplugins.ErrBackend},
		{"not JSON", func(f *fixture) { f.ts.fail = status(502, `<html>bad gateway</html>`) }, nil, vaultplugins.ErrUnavailable},
		{"mac token", func(f *fixture) { f.ts.tokenType = "mac" }, nil, vaultplugins.ErrUnsupported},
		{"unreachable", func(f *fixture) { f.ts.srv.Close() }, nil, vaultplugins.ErrUnavailable},
		{"scope not granted at connect", nil, []string{"admin"}, vaultplugins.ErrDenied},
		{"wider token", func(f *fixture) { f.ts.wider = "read write admin" }, []string{"read"}, vaultplugins.ErrDenied},
		{"bad scope token", nil, []string{"re ad"}, vaultplugins.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.connect(t, "alice", "read", "write")
			if tc.adjust != nil {
				tc.adjust(f)
			}
			_, err := fetch(t, plugintest.New(t, f.store), "alice", tc.scopes...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			f.assertNoSecrets(t, err.Error(), "error")
		})
	}
}

func TestAcceptWiderScopes(t *testing.T) {
	f := newFixture(t, func(p *oauth.Provider) { p.AcceptWiderScopes = true })
	f.ts.wider = "read write"
	f.connect(t, "alice", "read", "write")
	if _, err := fetch(t, f.store, "alice", "read"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logs.String(), "wider than requested") {
		t.Fatalf("no warning logged: %s", f.logs.String())
	}
}

func TestRequests(t *testing.T) {
	f := newFixture(t, nil)
	f.connect(t, "alice", "read")
	for _, tc := range []struct {
		name string
		req  vaultplugins.Request
		want error
	}{
		{"other user's account", vaultplugins.Request{Ref: "users/alice/example", User: "mallory"}, vaultplugins.ErrDenied},
		{"no user", vaultplugins.Request{Ref: "example"}, vaultplugins.ErrInvalidRequest},
		{"unknown provider", vaultplugins.Request{Ref: "nope", User: "alice"}, vaultplugins.ErrInvalidRequest},
		{"not connected", vaultplugins.Request{Ref: "example", User: "bob"}, vaultplugins.ErrNotFound},
		{"malformed", vaultplugins.Request{Ref: "users/alice", User: "alice"}, vaultplugins.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.store.Fetch(t.Context(), tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
		})
	}
	if f.ts.total.Load() != 0 {
		t.Fatalf("%d provider calls for refused requests", f.ts.total.Load())
	}
}

// A caller that gives up does not cut the refresh short: the rotated token
// is still stored.
func TestCallerCancelKeepsRotation(t *testing.T) {
	f := newFixture(t, nil)
	rt0 := f.connect(t, "alice")
	f.ts.hold = make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := f.store.Fetch(ctx, vaultplugins.Request{Ref: "example", User: "alice"})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, vaultplugins.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Fetch = %v", err)
	}
	close(f.ts.hold)
	// The flight finishes on its own; this Fetch joins it or reads its cache.
	if _, err := fetch(t, f.store, "alice"); err != nil {
		t.Fatal(err)
	}
	if stored, _ := oauth.StoredRefreshToken(t.Context(), f.store, "alice", "example"); stored == rt0 || f.ts.count("alice") != 1 {
		t.Fatalf("rotated = %v, refreshes = %d (want 1)", stored != rt0, f.ts.count("alice"))
	}
}

func TestStorage(t *testing.T) {
	f := newFixture(t, nil)
	rt := f.connect(t, "alice", "write", "read", "read")
	if _, err := fetch(t, f.store, "alice"); err != nil {
		t.Fatal(err)
	}
	accts, err := f.store.Accounts(t.Context(), "alice")
	if err != nil || len(accts) != 1 || cmp.Diff([]string{"read", "write"}, accts[0].Scopes) != "" {
		t.Fatalf("Accounts = %+v, %v", accts, err)
	}
	f.store.Close(t.Context())
	fi, err := os.Stat(filepath.Join(f.dir, oauth.FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db mode %v, %v", fi.Mode().Perm(), err)
	}
	stored, _ := filepath.Glob(filepath.Join(f.dir, "*"))
	for _, p := range stored {
		raw, _ := os.ReadFile(p)
		f.assertNoSecrets(t, string(raw), filepath.Base(p))
		if bytes.Contains(raw, []byte(rt)) {
			t.Fatalf("%s holds the refresh token in clear", p)
		}
	}

	other := make([]byte, oauth.KeySize)
	rand.Read(other)
	if _, err := oauth.Open(t.Context(), oauth.Config{DataDir: f.dir, Key: other}); !errors.Is(err, oauth.ErrWrongKey) {
		t.Fatalf("Open with another key: %v", err)
	}
	if _, err := oauth.Open(t.Context(), oauth.Config{DataDir: f.dir, Key: []byte("short")}); !errors.Is(err, oauth.ErrKey) {
		t.Fatalf("short key: %v", err)
	}
}

func TestConnectAndDisconnect(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, user, provider string
		token                vaultplugins.Secret
		scopes               []string
		want                 error
	}{
		{"empty user", "", "example", "rt", nil, oauth.ErrInvalidRef},
		{"unknown provider", "alice", "nope", "rt", nil, oauth.ErrUnknownProvider},
		{"empty token", "alice", "example", "", nil, oauth.ErrInvalidToken},
		{"huge token", "alice", "example", vaultplugins.Secret(strings.Repeat("x", oauth.MaxTokenBytes+1)), nil, oauth.ErrInvalidToken},
		{"bad scope", "alice", "example", "rt", []string{"a\"b"}, oauth.ErrInvalidScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.store.Connect(t.Context(), tc.user, tc.provider, tc.token, tc.scopes); !errors.Is(err, tc.want) {
				t.Fatalf("Connect = %v, want %v", err, tc.want)
			}
		})
	}
	f.connect(t, "alice", "read")
	if _, err := fetch(t, f.store, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Disconnect(t.Context(), "alice", "example"); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(t, f.store, "alice"); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("after Disconnect (cache dropped too): %v", err)
	}
	if err := f.store.Disconnect(t.Context(), "alice", "example"); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("second Disconnect: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	key := make([]byte, oauth.KeySize)
	good := oauth.Provider{Name: "gh", TokenURL: "https://example.test/token", ClientID: "id"}
	for _, tc := range []struct {
		name   string
		adjust func(*oauth.Config)
		want   error
	}{
		{"ok", func(*oauth.Config) {}, nil},
		{"no dir", func(c *oauth.Config) { c.DataDir = "" }, vaultplugins.ErrInvalidConfig},
		{"bad name", func(c *oauth.Config) { c.Providers[0].Name = "g h" }, vaultplugins.ErrInvalidConfig},
		{"twice", func(c *oauth.Config) { c.Providers = append(c.Providers, good) }, vaultplugins.ErrInvalidConfig},
		{"relative URL", func(c *oauth.Config) { c.Providers[0].TokenURL = "/token" }, vaultplugins.ErrInvalidConfig},
		{"URL with user", func(c *oauth.Config) { c.Providers[0].TokenURL = "https://u:p@example.test/token" }, vaultplugins.ErrInvalidConfig},
		{"no client", func(c *oauth.Config) { c.Providers[0].ClientID = "" }, vaultplugins.ErrInvalidConfig},
		{"auth method", func(c *oauth.Config) { c.Providers[0].AuthMethod = "jwt" }, vaultplugins.ErrInvalidConfig},
		{"format", func(c *oauth.Config) { c.Providers[0].Format = "{nope}" }, vaultplugins.ErrInvalidConfig},
		{"key", func(c *oauth.Config) { c.Key = key[:16] }, oauth.ErrKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := oauth.Config{DataDir: "d", Key: key, Providers: []oauth.Provider{good}}
			tc.adjust(&c)
			if err := c.Validate(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestProviderFormat(t *testing.T) {
	f := newFixture(t, func(p *oauth.Provider) {
		p.Header = "X-Upstream-Token"
		p.Format = "token {value}"
		p.AuthMethod = oauth.AuthPost
	})
	f.ts.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// client_secret_post: credentials in the body, moved to Basic for
		// the shared handler.
		r.ParseForm()
		if r.PostForm.Get("client_id") != clientID || r.PostForm.Get("client_secret") != clientSecret {
			writeJSON(w, 401, map[string]any{"error": "invalid_client"})
			return
		}
		r.SetBasicAuth(clientID, clientSecret)
		f.ts.serve(w, r)
	})
	f.connect(t, "alice")
	cred, err := fetch(t, f.store, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if h, v, err := cred.Render(); err != nil || h != "X-Upstream-Token" || !strings.HasPrefix(v.Reveal(), "token at-alice-") {
		t.Fatalf("Render = %q %q %v", h, v.Reveal(), err)
	}
}
