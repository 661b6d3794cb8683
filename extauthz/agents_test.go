package extauthz_test

import (
	"context"
	"github.com/writ-dev/writ/tokens"
	"log/slog"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/test/writtest"
)

// agentRig is the real Check pipeline with a real agent registry.
type agentRig struct {
	*rig
	srv *extauthz.Server
	reg *agents.Store
}

func newAgentRig(t *testing.T, denyUnknown bool, ownIssuer ...string) *agentRig {
	t.Helper()
	r := newRig(t, rigOptions{})
	db, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := agents.Open(t.Context(), db, agents.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extauthz.New(extauthz.Deps{Verifier: r.verifier, Engine: policies.NewEngine(policies.Options{}), Minter: r.minter,
		Evidence: r.records, Agents: reg, DenyUnknownAgents: denyUnknown, OwnIssuer: strings.Join(ownIssuer, "")}, extauthz.Config{Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: r.logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &agentRig{rig: r, srv: srv, reg: reg}
}

func (r *agentRig) call(t *testing.T, token string) (*authv3.CheckResponse, audit.Record) {
	t.Helper()
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, token, nil))
	if err != nil {
		t.Fatal(err)
	}
	return resp, r.records.last(t)
}

// wantDenied asserts the exact 403 body and the evidence of an agent
// refused for its registry status.
func wantDenied(t *testing.T, resp *authv3.CheckResponse, rec audit.Record, reason string) {
	t.Helper()
	if resp.GetOkResponse() != nil {
		t.Fatalf("want denial (%s), got allow", reason)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); int(got) != 403 {
		t.Errorf("status %d, want 403", got)
	}
	want := `{"error":"access_denied","reason":"` + reason + `","decision_id":"` + rec.DecisionID + `"}`
	if got := resp.GetDeniedResponse().GetBody(); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if rec.Outcome != "deny" || rec.Status != 403 || rec.Reason != reason || rec.Agent != "research-bot" || rec.User != "alice" {
		t.Errorf("evidence %+v", rec)
	}
	if rec.Token != nil {
		t.Errorf("a refused agent got a token: %+v", rec.Token)
	}
	if rec.PolicyRevision != "" {
		t.Errorf("the policy ran for a refused agent (revision %q)", rec.PolicyRevision)
	}
}

func TestCheckKillSwitch(t *testing.T) {
	r := newAgentRig(t, false)
	ctx := t.Context()
	if err := r.reg.Register(ctx, agents.Agent{ClientID: "research-bot", Owner: "alice", Tenant: "tenant-a"}); err != nil {
		t.Fatal(err)
	}
	token := r.token(t, "alice", "research-bot")

	resp, rec := r.call(t, token)
	if resp.GetOkResponse() == nil || rec.Token == nil {
		t.Fatalf("active agent: want allow with a token, got %v", resp)
	}
	first := rec.Token.JTI
	r.waitCaches()
	if _, rec = r.call(t, token); rec.Token == nil || !rec.Token.Reused || rec.Token.JTI != first {
		t.Fatalf("precondition: the second call reuses the cached token, got %+v", rec.Token)
	}

	if err := r.reg.Suspend(ctx, "research-bot", "user:op", "leaking data"); err != nil {
		t.Fatal(err)
	}
	resp, rec = r.call(t, token)
	wantDenied(t, resp, rec, "the agent is suspended")
	if a, _ := r.reg.Get(ctx, "research-bot"); !a.LastSeen.IsZero() {
		t.Errorf("last seen written on the Check path: %v", a.LastSeen)
	}

	if err := r.reg.Resume(ctx, "research-bot", "user:op"); err != nil {
		t.Fatal(err)
	}
	if resp, rec = r.call(t, token); resp.GetOkResponse() == nil || rec.Outcome != "allow" {
		t.Fatalf("resumed agent: want allow, got %v", resp)
	}
	// The token minted before the suspension is still in the mint cache's
	// reuse window, but a resumed agent never gets it back.
	if rec.Token == nil || rec.Token.Reused || rec.Token.JTI == first {
		t.Fatalf("resumed agent was handed the token minted before its suspension: %+v", rec.Token)
	}
}

func TestCheckRefusesByAgentStatus(t *testing.T) {
	cases := []struct {
		name        string
		denyUnknown bool
		ownIssuer   bool // the token's issuer is writ's own
		register    *agents.Agent
		wantReason  string // "" = allowed
	}{
		{name: "unknown agent allowed by default"},
		{name: "unknown agent denied when configured", denyUnknown: true, wantReason: "the agent is not registered"},
		{name: "pending agent", register: &agents.Agent{ClientID: "research-bot", Status: agents.Pending}, wantReason: "the agent is awaiting review"},
		{name: "active agent", denyUnknown: true, register: &agents.Agent{ClientID: "research-bot"}},
		{name: "registered suspended", register: &agents.Agent{ClientID: "research-bot", Status: agents.Suspended}, wantReason: "the agent is suspended"},
		// writ's own tokens name agents writ registered: once deleted, the
		// agent's tokens are refused even where unknown agents are allowed.
		{name: "deleted agent of writ's own issuer", ownIssuer: true, wantReason: "the agent is not registered"},
		{name: "registered agent of writ's own issuer", ownIssuer: true, register: &agents.Agent{ClientID: "research-bot"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var own []string
			if c.ownIssuer {
				own = []string{tokens.DevIssuerName}
			}
			r := newAgentRig(t, c.denyUnknown, own...)
			if c.register != nil {
				if err := r.reg.Register(t.Context(), *c.register); err != nil {
					t.Fatal(err)
				}
			}
			resp, rec := r.call(t, r.token(t, "alice", "research-bot"))
			if c.wantReason == "" {
				if resp.GetOkResponse() == nil {
					t.Fatalf("want allow, got %v", resp)
				}
				return
			}
			wantDenied(t, resp, rec, c.wantReason)
		})
	}
}

// Suspending an agent while it sends requests: every Check that starts
// after Suspend returns is refused.
func TestCheckSuspendWhileSending(t *testing.T) {
	r := newAgentRig(t, false)
	ctx := t.Context()
	if err := r.reg.Register(ctx, agents.Agent{ClientID: "research-bot"}); err != nil {
		t.Fatal(err)
	}
	token := r.token(t, "alice", "research-bot")
	req := writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, token, nil)
	sendCtx, stop := context.WithCancel(ctx)
	done := make(chan int)
	go func() {
		n := 0
		for sendCtx.Err() == nil {
			resp, _ := r.srv.Check(sendCtx, req)
			if resp.GetOkResponse() != nil {
				n++
			}
		}
		done <- n
	}()
	// Wait until at least one call went through before suspending.
	for {
		resp, _ := r.srv.Check(ctx, req)
		if resp.GetOkResponse() != nil {
			break
		}
	}
	if err := r.reg.Suspend(ctx, "research-bot", "user:op", "runaway"); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		resp, err := r.srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() != nil {
			t.Fatalf("a Check after the suspension was allowed: %v %v", resp, err)
		}
	}
	stop()
	<-done
}
