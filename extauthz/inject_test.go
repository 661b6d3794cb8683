package extauthz_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/test/writtest"
	"github.com/writ-dev/writ/vaultplugins"
)

const upstreamSecret = "sf-5b0c1d2e-secret-value"

// vaultBackend is an in-process backend that counts its calls and can be
// told to fail, hang or hand out an expired credential.
type vaultBackend struct {
	calls   atomic.Int64
	err     error
	hang    bool
	expired bool
	gate    chan struct{} // when set, Fetch waits for it (to line up a burst)
}

func (b *vaultBackend) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	b.calls.Add(1)
	if b.gate != nil {
		<-b.gate
	}
	if b.hang {
		<-ctx.Done()
		return vaultplugins.Credential{}, ctx.Err()
	}
	if b.err != nil {
		return vaultplugins.Credential{}, b.err
	}
	c := vaultplugins.Credential{Value: vaultplugins.Secret(upstreamSecret), Version: "7", ExpiresAt: time.Now().Add(time.Hour)}
	if b.expired {
		c.ExpiresAt = time.Now().Add(-time.Minute)
	}
	return c, nil
}

// perUser answers each caller with a value of their own, as an oauth
// backend does for a bare provider reference.
type perUser struct{ calls atomic.Int64 }

func (p *perUser) Fetch(_ context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	p.calls.Add(1)
	return vaultplugins.Credential{Value: vaultplugins.Secret("token-of-" + req.User), Version: "1"}, nil
}

func (p *perUser) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "oauth"}, nil
}

// TestCheckCredentialNeverCrossesCallers: a reference without {user} that
// the backend reads as "this caller's" must not be served from another
// caller's cache entry.
func TestCheckCredentialNeverCrossesCallers(t *testing.T) {
	b := &perUser{}
	host, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Backends: map[string]vaultplugins.Backend{"oauth": b}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	dec := policies.Decision{Allow: true, Audience: "https://api.example", Credential: &policies.CredentialRef{Backend: "oauth", Ref: "github", Header: "x-api-key"}}
	r := newRig(t, rigOptions{engine: fixedDecision{dec: dec}, credentials: host})
	for round := 0; round < 2; round++ {
		for _, user := range []string{"alice", "bob"} {
			resp, err := r.srv.Check(t.Context(), writtest.ToolCall("query", nil, r.token(t, user, "bot"), nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := writtest.Header(resp, "x-api-key"); got != "token-of-"+user {
				t.Fatalf("round %d: %s got %q", round, user, got)
			}
		}
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend calls = %d, want 2 (one per user, then cached)", n)
	}
}

func (b *vaultBackend) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "salesforce"}, nil
}

func injectRig(t *testing.T, b *vaultBackend, ref policies.CredentialRef, callTimeout time.Duration) *rig {
	t.Helper()
	host, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Backends: map[string]vaultplugins.Backend{"salesforce": b}, CallTimeout: callTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	dec := policies.Decision{Allow: true, Audience: "https://salesforce.example", Scopes: []string{"api"}, Credential: &ref}
	return newRig(t, rigOptions{engine: fixedDecision{dec: dec}, credentials: host})
}

func TestCheckInjectsCredential(t *testing.T) {
	b := &vaultBackend{}
	r := injectRig(t, b, policies.CredentialRef{Backend: "salesforce", Ref: "users/{user}", Header: "X-Api-Key", Format: "Token {secret}"}, 0)
	inbound := r.token(t, "alice", "research-bot")
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("query", nil, inbound, nil))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("want allow: %v %v", err, resp)
	}
	if got := writtest.Header(resp, "x-api-key"); got != "Token "+upstreamSecret {
		t.Errorf("x-api-key = %q", got)
	}
	if got := writtest.Header(resp, "authorization"); !strings.HasPrefix(got, "Bearer ey") {
		t.Errorf("the writ token should still go in authorization, got %q", got)
	}
	rec := r.records.last(t)
	if c := rec.Credential; c == nil || c.Backend != "salesforce" || c.Ref != "users/alice" || c.Version != "7" || c.Error != "" {
		t.Errorf("evidence credential = %+v", rec.Credential)
	}
	evidence, _ := json.Marshal(r.records.recs)
	if strings.Contains(string(evidence), upstreamSecret) || strings.Contains(r.logs.String(), upstreamSecret) {
		t.Error("the upstream credential reached the evidence or the logs")
	}
}

// A third party's own Authorization: the credential goes there and no
// writ token is minted (the upstream would not understand it).
func TestCheckCredentialInAuthorizationReplacesTheToken(t *testing.T) {
	r := injectRig(t, &vaultBackend{}, policies.CredentialRef{Backend: "salesforce", Ref: "org", Format: "Bearer {secret}"}, 0)
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("query", nil, r.token(t, "alice", "bot"), nil))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("want allow: %v %v", err, resp)
	}
	if got := writtest.Header(resp, "authorization"); got != "Bearer "+upstreamSecret {
		t.Errorf("authorization = %q", got)
	}
	if rec := r.records.last(t); rec.Token != nil {
		t.Errorf("a writ token was minted for nothing: %+v", rec.Token)
	}
	for _, h := range resp.GetOkResponse().GetHeadersToRemove() {
		if h == "authorization" {
			t.Error("authorization is both set and removed")
		}
	}
}

// A burst of Checks needing one credential makes one backend call.
func TestCheckCredentialBurstMakesOneCall(t *testing.T) {
	b := &vaultBackend{gate: make(chan struct{})}
	r := injectRig(t, b, policies.CredentialRef{Backend: "salesforce", Ref: "org", Header: "x-api-key"}, 0)
	tok := r.token(t, "alice", "bot")
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := r.srv.Check(context.Background(), writtest.ToolCall("query", nil, tok, nil))
			if err == nil && writtest.Header(resp, "x-api-key") == upstreamSecret {
				allowed.Add(1)
			}
		}()
	}
	// Let every Check reach the cache or the shared call before the
	// backend answers; one of them is already inside it.
	waitFor(t, func() bool { return b.calls.Load() > 0 })
	close(b.gate)
	wg.Wait()
	if allowed.Load() != 200 {
		t.Fatalf("allowed %d of 200", allowed.Load())
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("backend called %d times for one credential, want 1", n)
	}
}

func TestCheckCredentialFailuresFailClosed(t *testing.T) {
	cases := []struct {
		name       string
		backend    *vaultBackend
		ref        string
		user       string
		timeout    time.Duration
		wantStatus int
		wantReason string
	}{
		{"backend unavailable", &vaultBackend{err: vaultplugins.ErrUnavailable}, "org", "alice", 0, 503,
			`credential backend "salesforce" failed: the backend is unavailable`},
		{"backend hangs", &vaultBackend{hang: true}, "org", "alice", 50 * time.Millisecond, 503,
			`credential backend "salesforce" failed: the backend timed out`},
		{"no such credential", &vaultBackend{err: vaultplugins.ErrNotFound}, "users/{user}", "alice", 0, 403,
			`credential backend "salesforce": no such credential`},
		{"grant revoked", &vaultBackend{err: vaultplugins.ErrRevoked}, "users/{user}", "alice", 0, 403,
			`credential backend "salesforce": the credential's grant was revoked; reconnect the account`},
		{"expired credential", &vaultBackend{expired: true}, "org", "alice", 0, 503,
			`credential backend "salesforce" failed: the backend returned an unusable credential`},
		{"user escapes the reference", &vaultBackend{}, "users/{user}", "../admin", 0, 403,
			`credential reference for backend "salesforce" cannot be built: {user} holds characters a reference segment cannot`},
		{"unknown placeholder", &vaultBackend{}, "users/{email}", "alice", 0, 403,
			`credential reference for backend "salesforce" cannot be built: unknown placeholder (only {user}, {agent} and {tenant})`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := injectRig(t, tc.backend, policies.CredentialRef{Backend: "salesforce", Ref: tc.ref, Header: "x-api-key"}, tc.timeout)
			resp, err := r.srv.Check(t.Context(), writtest.ToolCall("query", nil, r.token(t, tc.user, "bot"), nil))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil || int(denied.GetStatus().GetCode()) != tc.wantStatus {
				t.Fatalf("want %d, got %v", tc.wantStatus, resp)
			}
			var body struct{ Reason string }
			json.Unmarshal([]byte(denied.GetBody()), &body)
			if body.Reason != tc.wantReason {
				t.Errorf("reason %q\nwant   %q", body.Reason, tc.wantReason)
			}
			rec := r.records.last(t)
			if rec.Credential == nil || rec.Credential.Backend != "salesforce" || rec.Credential.Error == "" || rec.Outcome == "allow" {
				t.Errorf("evidence = %+v / %+v", rec, rec.Credential)
			}
		})
	}
}

var _ extauthz.Credentials = (*vaultplugins.Host)(nil)

// waitFor yields until cond holds (bounded): a scheduling wait, not a timed sleep.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		runtime.Gosched()
	}
}

// BenchmarkCheckCredential is the cost of injecting a cached vaulted
// credential: the same allowed call with and without one, in one run.
func BenchmarkCheckCredential(b *testing.B) {
	host, err := vaultplugins.NewHost(context.Background(), vaultplugins.HostConfig{
		Backends: map[string]vaultplugins.Backend{"salesforce": &vaultBackend{}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { host.Close() })
	base := policies.Decision{Allow: true, Audience: "https://salesforce.example", Scopes: []string{"api"}}
	withCredential := base
	withCredential.Credential = &policies.CredentialRef{Backend: "salesforce", Ref: "users/{user}", Header: "x-api-key"}
	for _, bc := range []struct {
		name string
		dec  policies.Decision
	}{{"none", base}, {"injected", withCredential}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b, rigOptions{engine: fixedDecision{dec: bc.dec}, credentials: host, cfg: extauthz.Config{Logger: discardLogger()}})
			req := writtest.ToolCall("query", nil, r.token(b, "alice", "bot"), nil)
			r.srv.Check(context.Background(), req) // warm the caches
			r.waitCaches()
			b.ReportAllocs()
			for b.Loop() {
				if resp, _ := r.srv.Check(context.Background(), req); resp.GetOkResponse() == nil {
					b.Fatalf("denied: %v", resp)
				}
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// inputRecorder decides like fixedDecision and keeps what the policy saw.
type inputRecorder struct {
	fixedDecision
	mu   sync.Mutex
	seen []string
}

func (r *inputRecorder) Decide(ctx context.Context, in *policies.Input) (policies.Decision, string, error) {
	b, _ := json.Marshal(in.Value())
	r.mu.Lock()
	r.seen = append(r.seen, string(b))
	r.mu.Unlock()
	return r.fixedDecision.Decide(ctx, in)
}

// TestCredentialNeverInPolicyInput: policy sees the reference, never the
// value — even on the call after the value was fetched and cached.
func TestCredentialNeverInPolicyInput(t *testing.T) {
	host, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Backends: map[string]vaultplugins.Backend{"salesforce": &vaultBackend{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	rec := &inputRecorder{fixedDecision: fixedDecision{dec: policies.Decision{Allow: true, Audience: "https://salesforce.example",
		Credential: &policies.CredentialRef{Backend: "salesforce", Ref: "org", Header: "x-api-key"}}}}
	r := newRig(t, rigOptions{engine: rec, credentials: host})
	tok := r.token(t, "alice", "bot")
	for i := 0; i < 2; i++ {
		resp, err := r.srv.Check(t.Context(), writtest.ToolCall("query", nil, tok, nil))
		if err != nil || writtest.Header(resp, "x-api-key") != upstreamSecret {
			t.Fatalf("call %d: %v %v", i, err, resp)
		}
	}
	if len(rec.seen) != 2 {
		t.Fatalf("policy saw %d inputs", len(rec.seen))
	}
	for _, in := range rec.seen {
		if strings.Contains(in, upstreamSecret) {
			t.Fatal("the credential value reached the policy input")
		}
	}
}
