package hashicorpvault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

const (
	rootToken = "hvs.root-token-5e1f0a"
	roleID    = "role-id-3d9a"
	secretID  = "secret-id-c4a7f2b8"
)

// secretValues are every secret value the tests store; none may show up in
// an error string or a log line.
var secretValues = []string{"sf-v1-a1b2c3", "sf-v2-d4e5f6", "sf-tok-778899", "db-user-q1", "db-pass-w2e3", "old-v1-zz", rootToken, secretID}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// seed fills f with the fixtures the table tests read.
func seed(f *fakeVault) {
	f.put("salesforce/users/alice", map[string]any{"value": "sf-v1-a1b2c3", "token": "sf-tok-778899"})
	f.put("salesforce/users/alice", map[string]any{"value": "sf-v2-d4e5f6", "count": 7})
	f.put("db/basic", map[string]any{"username": "db-user-q1", "password": "db-pass-w2e3", "value": "unused"})
	f.setCustom("db/basic", map[string]string{"header": "X-DB-Auth", "format": "{username}:{password}", "expires_at": "2030-01-01T00:00:00Z"})
	f.put("old/key", map[string]any{"value": "old-v1-zz"})
	f.setCustom("old/key", map[string]string{"expires_at": "2020-01-01T00:00:00Z"})
	f.put("bad/meta", map[string]any{"value": "x"})
	f.setCustom("bad/meta", map[string]string{"expires_at": "next tuesday"})
	f.put("gone/deleted", map[string]any{"value": "d1"})
	f.put("gone/deleted", map[string]any{"value": "d2"})
	f.deleteVersion("gone/deleted", 2, false)
	f.deleteVersion("gone/deleted", 1, true)
	f.put("denied/path", map[string]any{"value": "nope"})
	f.denied["denied/path"] = true
}

type env struct {
	f     *fakeVault
	b     *hashicorpvault.Backend
	logs  *syncBuffer
	clock *clock
}

func newEnv(t *testing.T, approle bool, mod func(*hashicorpvault.Config)) *env {
	t.Helper()
	f := newFakeVault()
	t.Cleanup(f.Close)
	seed(f)
	logs := &syncBuffer{}
	clk := &clock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	cfg := hashicorpvault.Config{
		Address: f.URL(),
		Now:     clk.Now,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if approle {
		f.roleID, f.secretID = roleID, secretID
		cfg.RoleID, cfg.SecretID = roleID, secretID
	} else {
		f.tokens[rootToken] = true
		cfg.Token = rootToken
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := hashicorpvault.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{f: f, b: b, logs: logs, clock: clk}
}

// clean fails t if s holds a token, secret ID or secret value.
func clean(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the secret %q: %s", what, v, s)
		}
	}
}

func TestFetch(t *testing.T) {
	e := newEnv(t, false, nil)
	tests := []struct {
		ref        string
		want       string // rendered header value
		header     string
		version    string
		expiresAt  time.Time
		wantErr    []error
		noRequests bool
	}{
		{ref: "salesforce/users/alice", want: "Bearer sf-v2-d4e5f6", header: "Authorization", version: "2"},
		{ref: "salesforce/users/alice@1", want: "Bearer sf-v1-a1b2c3", header: "Authorization", version: "1"},
		{ref: "salesforce/users/alice#token@1", want: "Bearer sf-tok-778899", header: "Authorization", version: "1"},
		{ref: "db/basic", want: "db-user-q1:db-pass-w2e3", header: "X-DB-Auth", version: "1", expiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ref: "salesforce/users/alice#token", wantErr: []error{vaultplugins.ErrNotFound, hashicorpvault.ErrMissingField}},
		{ref: "salesforce/users/alice#count", wantErr: []error{vaultplugins.ErrNotFound, hashicorpvault.ErrMissingField}},
		{ref: "nobody/here", wantErr: []error{vaultplugins.ErrNotFound}},
		{ref: "salesforce/users/alice@9", wantErr: []error{vaultplugins.ErrNotFound}},
		{ref: "denied/path", wantErr: []error{vaultplugins.ErrDenied}},
		{ref: "gone/deleted", wantErr: []error{vaultplugins.ErrNotFound, hashicorpvault.ErrVersionDeleted}},
		{ref: "gone/deleted@1", wantErr: []error{vaultplugins.ErrNotFound, hashicorpvault.ErrVersionDeleted}},
		{ref: "old/key", wantErr: []error{vaultplugins.ErrRevoked, hashicorpvault.ErrExpired}},
		{ref: "bad/meta", wantErr: []error{vaultplugins.ErrBackend, hashicorpvault.ErrInvalidMetadata}},
		{ref: "../../sys/seal", wantErr: []error{vaultplugins.ErrInvalidRequest, hashicorpvault.ErrInvalidRef}, noRequests: true},
		{ref: "a/b@0", wantErr: []error{vaultplugins.ErrInvalidRequest, hashicorpvault.ErrInvalidRef}, noRequests: true},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, _, _, before := e.f.counts()
			cred, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: tt.ref, User: "alice"})
			if _, _, _, after := e.f.counts(); tt.noRequests && after != before {
				t.Errorf("an invalid reference reached Vault")
			}
			if tt.wantErr != nil {
				for _, want := range tt.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("Fetch(%q) = %v, want %v", tt.ref, err, want)
					}
				}
				if err != nil {
					clean(t, "error", err.Error())
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch(%q): %v", tt.ref, err)
			}
			header, value, err := cred.Render()
			if err != nil || header != tt.header || value.Reveal() != tt.want {
				t.Errorf("Render = %q %q %v, want %q %q", header, value.Reveal(), err, tt.header, tt.want)
			}
			if cred.Version != tt.version || !cred.ExpiresAt.Equal(tt.expiresAt) {
				t.Errorf("version %q expires %v, want %q %v", cred.Version, cred.ExpiresAt, tt.version, tt.expiresAt)
			}
		})
	}
	clean(t, "logs", e.logs.String())
}

func TestConfiguredFieldHeaderFormat(t *testing.T) {
	e := newEnv(t, false, func(c *hashicorpvault.Config) {
		c.Field, c.Header, c.Format = "token", "X-Api-Key", "{value}"
	})
	cred, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice@1"})
	if err != nil {
		t.Fatal(err)
	}
	header, value, err := cred.Render()
	if err != nil || header != "X-Api-Key" || value.Reveal() != "sf-tok-778899" {
		t.Fatalf("Render = %q %q %v", header, value.Reveal(), err)
	}
}

func TestNamespace(t *testing.T) {
	e := newEnv(t, false, func(c *hashicorpvault.Config) { c.Namespace = "team-a" })
	e.f.set(func(f *fakeVault) { f.namespace = "team-a" })
	if _, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"}); err != nil {
		t.Fatalf("Fetch with namespace: %v", err)
	}
	e.f.set(func(f *fakeVault) { f.namespace = "team-b" })
	if _, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"}); !errors.Is(err, vaultplugins.ErrDenied) {
		t.Fatalf("Fetch in another namespace = %v, want ErrDenied", err)
	}
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	for _, ns := range e.f.namespaces {
		if ns != "team-a" {
			t.Fatalf("request sent with X-Vault-Namespace %q", ns)
		}
	}
}

// The process environment's VAULT_TOKEN and VAULT_NAMESPACE must not leak
// into requests: only Config counts.
func TestIgnoresVaultEnvironment(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "hvs.from-env")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	e := newEnv(t, true, nil)
	if _, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"}); err != nil {
		t.Fatal(err)
	}
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	for _, ns := range e.f.namespaces {
		if ns != "" {
			t.Fatalf("namespace %q sent; none configured", ns)
		}
	}
}

func TestAppRoleLoginThenRead(t *testing.T) {
	e := newEnv(t, true, nil)
	for range 3 {
		cred, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"})
		if err != nil || cred.Value.Reveal() != "sf-v2-d4e5f6" {
			t.Fatalf("Fetch = %v", err)
		}
	}
	if logins, _, _, reads := e.f.counts(); logins != 1 || reads != 3 {
		t.Fatalf("logins %d reads %d, want 1 and 3", logins, reads)
	}
	clean(t, "logs", e.logs.String())
}

func TestAppRoleLoginRefused(t *testing.T) {
	e := newEnv(t, true, func(c *hashicorpvault.Config) { c.SecretID = "secret-id-wrong-0001" })
	_, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"})
	if !errors.Is(err, vaultplugins.ErrDenied) || !errors.Is(err, hashicorpvault.ErrLogin) {
		t.Fatalf("Fetch = %v, want ErrDenied and ErrLogin", err)
	}
	if strings.Contains(err.Error(), "secret-id-wrong-0001") {
		t.Fatalf("error names the secret ID: %v", err)
	}
	if _, _, _, reads := e.f.counts(); reads != 0 {
		t.Fatalf("%d reads without a token", reads)
	}
}

func TestTokenExpiryReLoginOnce(t *testing.T) {
	e := newEnv(t, true, nil)
	ref := vaultplugins.Request{Ref: "salesforce/users/alice"}
	if _, err := e.b.Fetch(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	e.f.expireAll()
	if _, err := e.b.Fetch(t.Context(), ref); err != nil {
		t.Fatalf("Fetch after expiry: %v", err)
	}
	if logins, _, lookups, reads := e.f.counts(); logins != 2 || lookups != 1 || reads != 3 {
		t.Fatalf("logins %d lookups %d reads %d, want 2, 1, 3", logins, lookups, reads)
	}

	// A policy denial with a valid token costs no login.
	if _, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "denied/path"}); !errors.Is(err, vaultplugins.ErrDenied) {
		t.Fatalf("denied path = %v", err)
	}
	if logins, _, _, _ := e.f.counts(); logins != 2 {
		t.Fatalf("a policy denial triggered a login (%d)", logins)
	}

	// A server that refuses every token gets exactly one more login, not a loop.
	e.f.set(func(f *fakeVault) { f.rejectAll = true })
	if _, err := e.b.Fetch(t.Context(), ref); !errors.Is(err, vaultplugins.ErrDenied) {
		t.Fatalf("Fetch = %v, want ErrDenied", err)
	}
	if logins, _, _, _ := e.f.counts(); logins != 3 {
		t.Fatalf("logins %d, want 3", logins)
	}
	clean(t, "logs", e.logs.String())
}

func TestConcurrentExpiryOneLogin(t *testing.T) {
	e := newEnv(t, true, nil)
	ref := vaultplugins.Request{Ref: "salesforce/users/alice"}
	if _, err := e.b.Fetch(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	e.f.expireAll()
	const n = 32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.b.Fetch(t.Context(), ref)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if logins, _, _, _ := e.f.counts(); logins != 2 {
		t.Fatalf("logins %d, want 2: one re-login for %d concurrent fetches", logins, n)
	}
}

func TestTokenRenewal(t *testing.T) {
	e := newEnv(t, true, nil)
	e.f.set(func(f *fakeVault) { f.lease, f.renewable = 60, true })
	ref := vaultplugins.Request{Ref: "salesforce/users/alice"}
	fetch := func() {
		t.Helper()
		if _, err := e.b.Fetch(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	e.clock.Add(30 * time.Second) // before two thirds of the lease
	fetch()
	if logins, renewals, _, _ := e.f.counts(); logins != 1 || renewals != 0 {
		t.Fatalf("logins %d renewals %d, want 1 and 0", logins, renewals)
	}
	e.clock.Add(11 * time.Second) // past 40s
	fetch()
	if logins, renewals, _, _ := e.f.counts(); logins != 1 || renewals != 1 {
		t.Fatalf("logins %d renewals %d, want 1 and 1", logins, renewals)
	}
	e.f.set(func(f *fakeVault) { f.noRenew = true })
	e.clock.Add(41 * time.Second)
	fetch()
	if logins, renewals, _, _ := e.f.counts(); logins != 2 || renewals != 2 {
		t.Fatalf("after a refused renewal: logins %d renewals %d, want 2 and 2", logins, renewals)
	}
	e.f.set(func(f *fakeVault) { f.renewable, f.noRenew = false, false })
	e.f.expireAll()
	fetch() // 403, then a login that yields a non-renewable token
	e.clock.Add(41 * time.Second)
	fetch()
	if logins, renewals, _, _ := e.f.counts(); logins != 4 || renewals != 2 {
		t.Fatalf("non-renewable token: logins %d renewals %d, want 4 and 2", logins, renewals)
	}
}

func TestUnavailable(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			e := newEnv(t, false, nil)
			// A raw body echoing secrets must not reach the error.
			e.f.set(func(f *fakeVault) { f.failWith, f.failBody = code, "boom token="+rootToken+" value=sf-v2-d4e5f6" })
			_, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"})
			if !errors.Is(err, vaultplugins.ErrUnavailable) {
				t.Fatalf("Fetch = %v, want ErrUnavailable", err)
			}
			clean(t, "error", err.Error())
		})
	}
	t.Run("down", func(t *testing.T) {
		for _, approle := range []bool{false, true} {
			e := newEnv(t, approle, nil)
			e.f.Close()
			_, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice"})
			if !errors.Is(err, vaultplugins.ErrUnavailable) {
				t.Fatalf("approle=%v: Fetch = %v, want ErrUnavailable", approle, err)
			}
			clean(t, "error", err.Error())
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		e := newEnv(t, false, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := e.b.Fetch(ctx, vaultplugins.Request{Ref: "salesforce/users/alice"}); !errors.Is(err, vaultplugins.ErrUnavailable) {
			t.Fatalf("Fetch = %v, want ErrUnavailable", err)
		}
	})
}

func TestDescribe(t *testing.T) {
	e := newEnv(t, true, nil)
	d, err := e.b.Describe(t.Context())
	if err != nil || d.Name != "hashicorp-vault" || d.Version != hashicorpvault.Version || !strings.Contains(d.Summary, "approle") {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
}

// Everything the backend prints — logs at debug level, errors, the
// credential through fmt and slog — is free of tokens, secret IDs and values.
func TestSecretsNeverPrinted(t *testing.T) {
	e := newEnv(t, true, nil)
	e.f.set(func(f *fakeVault) { f.lease, f.renewable = 60, true })
	var printed []string
	for i, ref := range []string{"salesforce/users/alice", "db/basic", "salesforce/users/alice#nope", "denied/path", "old/key", "gone/deleted"} {
		cred, err := e.b.Fetch(t.Context(), vaultplugins.Request{Ref: ref})
		if err != nil {
			printed = append(printed, err.Error())
		}
		printed = append(printed, fmt.Sprintf("%v %+v %#v", cred, cred, cred))
		e.clock.Add(25 * time.Second) // renewals and logins along the way
		if i%3 == 2 {
			e.f.expireAll()
		}
	}
	e.logs.Write([]byte(strings.Join(printed, "\n")))
	clean(t, "output", e.logs.String())
	if logins, renewals, _, _ := e.f.counts(); logins < 2 || renewals < 1 {
		t.Fatalf("logins %d renewals %d: the test did not exercise login and renewal", logins, renewals)
	}
}
