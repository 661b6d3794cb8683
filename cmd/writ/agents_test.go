package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/writ-dev/writ/approvals"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

func runAgents(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := agentsCommand(context.Background(), args, &out)
	return out.String(), err
}

// openRegistry opens the database in dir and its agent registry.
func openRegistry(t *testing.T, dir string) (*store.DB, *agents.Store) {
	t.Helper()
	db, err := store.OpenSQLite(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := agents.Open(t.Context(), db, agents.Options{})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, reg
}

func TestAgentsCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, reg := openRegistry(t, dir)
	for _, a := range []agents.Agent{
		{ClientID: "research-bot", Owner: "alice", Tenant: "acme"},
		{ClientID: "new-bot", Owner: "bob", Tenant: "acme", Status: agents.Pending},
	} {
		if err := reg.Register(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	steps := []struct {
		args    []string
		wantOut string // regexp
		wantErr error
	}{
		{[]string{"list", "--data-dir", dir}, `(?s)CLIENT ID.*new-bot\s+pending.*research-bot\s+active`, nil},
		{[]string{"list", "--data-dir", dir, "--status", "pending"}, `^CLIENT ID[^\n]*\nnew-bot `, nil},
		{[]string{"approve", "--data-dir", dir, "--as", "op", "new-bot"}, `^agent new-bot approved by user:op\n$`, nil},
		{[]string{"approve", "--data-dir", dir, "--as", "op", "new-bot"}, ``, agents.ErrTransition},
		{[]string{"suspend", "--data-dir", dir, "--as", "op", "--reason", "leaking data", "research-bot"},
			`^agent research-bot suspended by user:op \(evidence [0-9a-f-]{36}\)\n$`, nil},
		{[]string{"show", "--data-dir", dir, "research-bot"}, `"status": "suspended"`, nil},
		{[]string{"resume", "--data-dir", dir, "--as", "op", "research-bot"}, `^agent research-bot resumed by user:op \(evidence `, nil},
		{[]string{"resume", "--data-dir", dir, "--as", "op", "research-bot"}, ``, agents.ErrTransition},
		{[]string{"suspend", "--data-dir", dir, "research-bot"}, ``, errUsage},
		{[]string{"show", "--data-dir", dir}, ``, errUsage},
		{[]string{"frobnicate"}, ``, errUsage},
		{[]string{"delete", "--data-dir", dir, "new-bot"}, `^agent new-bot deleted\n$`, nil},
		{[]string{"show", "--data-dir", dir, "new-bot"}, ``, agents.ErrNotFound},
	}
	for _, s := range steps {
		out, err := runAgents(t, s.args...)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%v: err = %v, want %v", s.args, err, s.wantErr)
		}
		if s.wantOut != "" && !regexp.MustCompile(s.wantOut).MatchString(out) {
			t.Fatalf("%v: output %q does not match %s", s.args, out, s.wantOut)
		}
	}

	// show prints the agent as JSON.
	out, err := runAgents(t, "show", "--data-dir", dir, "research-bot")
	if err != nil {
		t.Fatal(err)
	}
	var shown agents.Agent
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Status != agents.Active || shown.Epoch != 1 || shown.Owner != "alice" {
		t.Errorf("show: %+v, %v", shown, err)
	}

	// Suspend and resume are evidence records, and the chain stays whole.
	db, err = store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := audit.Tail(ctx, db, 10)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range recs {
		if r.Agent != "research-bot" || r.User != "user:op" {
			t.Errorf("record %+v", r)
		}
		outcomes = append(outcomes, r.Outcome+":"+r.Reason)
	}
	if got := strings.Join(outcomes, ","); got != "agent_suspended:leaking data,agent_resumed:" && got != "agent_resumed:,agent_suspended:leaking data" {
		t.Errorf("evidence outcomes %s", got)
	}
	res, err := audit.Verify(ctx, db)
	if err != nil || !res.OK || res.Records != 2 {
		t.Errorf("chain %+v, %v", res, err)
	}
}

// The kill switch reaches approvals: suspending an agent denies its
// pending approval requests, and each cancellation is evidence.
func TestAgentsSuspendCancelsApprovals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, reg := openRegistry(t, dir)
	if err := reg.Register(ctx, agents.Agent{ClientID: "pay-bot", Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	st, err := approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	call := approvals.Call{User: "alice", Agent: "pay-bot", Tenant: "acme", Resource: "payments", Action: "refund"}
	res, err := st.Gate(ctx, call, approvals.Requirement{BindingMessage: "Refund?", TTL: time.Hour})
	if err != nil || res.Status != approvals.Pending {
		t.Fatalf("gate: %+v, %v", res, err)
	}
	st.Close()
	db.Close()

	out, err := runAgents(t, "suspend", "--data-dir", dir, "--as", "op", "pay-bot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 open approval request(s) of agent pay-bot cancelled") {
		t.Errorf("output %q does not report the cancelled approval", out)
	}

	db, err = store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err = approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Get(ctx, res.ID)
	if err != nil || got.Status != approvals.Denied || got.Approver != "user:op" {
		t.Fatalf("approval after suspension: %+v, %v; want denied by user:op", got, err)
	}
	recs, err := audit.Tail(ctx, db, 10)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range recs {
		outcomes = append(outcomes, r.Outcome)
	}
	slices.Sort(outcomes)
	if !slices.Equal(outcomes, []string{"agent_suspended", "approval_denied"}) {
		t.Errorf("evidence outcomes %v, want agent_suspended and approval_denied", outcomes)
	}
}

// An agent that registered itself is shown with its client metadata, and
// never with a secret or its hash.
func TestAgentsShowRegisteredClient(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, reg := openRegistry(t, dir)
	secretHash := []byte("0123456789abcdef0123456789abcdef")
	err := reg.RegisterClient(ctx, agents.Agent{ClientID: "c-1", Name: "demo", Tenant: "acme"}, agents.Client{
		ClientID: "c-1", SecretHash: secretHash, RegistrationTokenHash: secretHash,
		Metadata: agents.ClientMetadata{ClientName: "demo", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic"},
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, err := runAgents(t, "show", "--data-dir", dir, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		ClientID string                 `json:"client_id"`
		Client   *agents.ClientMetadata `json:"client"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.ClientID != "c-1" || shown.Client == nil || shown.Client.ClientName != "demo" || shown.Client.TokenEndpointAuthMethod != "client_secret_basic" {
		t.Errorf("show: %s", out)
	}
	if strings.Contains(out, "secret_hash") || strings.Contains(out, "MDEy") || strings.Contains(out, "0123456789abcdef") {
		t.Errorf("show printed a secret hash: %s", out)
	}
}
