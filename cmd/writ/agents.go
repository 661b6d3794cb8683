package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/approvals"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

// agentsCommand runs `writ agents list|show|approve|suspend|resume|delete`
// against the data directory's registry. Suspend and resume are evidence
// records: each appends one to the evidence log, after the status change.
// A running writ serve sees a change made here within its refresh interval
// (agents refresh, default 1s).
func agentsCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: agents takes a subcommand: list, show, approve, suspend, resume or delete", errUsage)
	}
	sub := args[0]
	fs := newFlags("agents " + sub)
	config := configFlags(fs)
	var status, tenant, as, reason *string
	switch sub {
	case "list":
		status = fs.String("status", "", "list only agents with this status (active, pending, suspended)")
		tenant = fs.String("tenant", "", "list only agents in this tenant")
	case "show", "delete":
	case "approve", "resume":
		as = fs.String("as", "", "the subject of the operator (recorded as user:SUBJECT)")
	case "suspend":
		as = fs.String("as", "", "the subject of the operator (recorded as user:SUBJECT)")
		reason = fs.String("reason", "", "why the agent is suspended (recorded in the evidence)")
	default:
		return fmt.Errorf("%w: unknown agents subcommand %q", errUsage, sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	switch {
	case sub == "list" && fs.NArg() != 0:
		return fmt.Errorf("%w: agents list takes no arguments", errUsage)
	case sub != "list" && fs.NArg() != 1:
		return fmt.Errorf("%w: agents %s takes one client_id", errUsage, sub)
	case as != nil && *as == "":
		return fmt.Errorf("%w: agents %s needs --as SUBJECT", errUsage, sub)
	}
	db, err := openDataDir(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	reg, err := agents.Open(ctx, db, agents.Options{})
	if err != nil {
		return err
	}

	switch sub {
	case "list":
		list, err := reg.List(ctx, agents.Filter{Status: agents.Status(*status), Tenant: *tenant})
		if err != nil {
			return err
		}
		return printAgents(stdout, list)
	case "show":
		a, c, err := reg.Client(ctx, fs.Arg(0))
		if err != nil && !errors.Is(err, agents.ErrNoClient) {
			return agentError(fs.Arg(0), err)
		}
		// An agent that registered itself shows its client metadata too
		// (never a secret: only hashes are stored, and they are not shown).
		shown := struct {
			agents.Agent
			Client *agents.ClientMetadata `json:"client,omitempty"`
		}{Agent: a}
		if err == nil {
			shown.Client = &c.Metadata
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(shown)
	case "delete":
		if err := reg.Delete(ctx, fs.Arg(0)); err != nil {
			return agentError(fs.Arg(0), err)
		}
		fmt.Fprintf(stdout, "agent %s deleted\n", printable(fs.Arg(0)))
		return nil
	}
	id, by := fs.Arg(0), "user:"+*as
	switch sub {
	case "approve":
		err = reg.Approve(ctx, id, by)
	case "suspend":
		err = reg.Suspend(ctx, id, by, *reason)
	case "resume":
		err = reg.Resume(ctx, id, by)
	}
	if err != nil {
		return agentError(id, err)
	}
	verb := map[string]string{"approve": "approved", "suspend": "suspended", "resume": "resumed"}[sub]
	if sub == "approve" {
		fmt.Fprintf(stdout, "agent %s %s by %s\n", printable(id), verb, by)
		return nil
	}
	a, err := reg.Get(ctx, id)
	if err != nil {
		return agentError(id, err)
	}
	why := ""
	if reason != nil {
		why = *reason
	}
	decisionID, cancelled, err := recordAgentChange(ctx, db, a, by, "agent_"+verb, why, sub == "suspend")
	if err != nil {
		return fmt.Errorf("agent %s %s, but its evidence record was not kept: %w", printable(id), verb, err)
	}
	fmt.Fprintf(stdout, "agent %s %s by %s (evidence %s)\n", printable(id), verb, by, decisionID)
	if cancelled > 0 {
		fmt.Fprintf(stdout, "%d open approval request(s) of agent %s cancelled\n", cancelled, printable(id))
	}
	return nil
}

// recordAgentChange appends the evidence record of a suspension or
// resumption and waits until it is durable. A suspension also cancels the
// agent's open approval requests, each cancellation an evidence record of
// its own. A running writ serve writes to the same chain: its writer finds
// the head moved, logs a warning and continues from the stored head, so the
// chain stays whole.
func recordAgentChange(ctx context.Context, db *store.DB, a agents.Agent, by, outcome, reason string, cancelApprovals bool) (string, int, error) {
	log, err := audit.Open(ctx, db, audit.Options{})
	if err != nil {
		return "", 0, err
	}
	closeLog := func() error {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return log.Close(closeCtx)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", 0, errors.Join(err, closeLog())
	}
	appendErr := log.Append(audit.Record{
		DecisionID: id.String(),
		Time:       time.Now(),
		User:       by,
		Agent:      a.ClientID,
		Tenant:     a.Tenant,
		Request:    audit.Request{Protocol: "cli"},
		Outcome:    outcome,
		Reason:     reason,
	})
	cancelled := 0
	if cancelApprovals && appendErr == nil {
		var list []approvals.Request
		list, appendErr = cancelAgentApprovals(ctx, db, log, a.ClientID, by)
		cancelled = len(list)
	}
	if err := errors.Join(appendErr, closeLog()); err != nil {
		return "", cancelled, err
	}
	return id.String(), cancelled, nil
}

// cancelAgentApprovals denies a suspended agent's open approval requests,
// recording each as approval evidence.
func cancelAgentApprovals(ctx context.Context, db *store.DB, evidence *audit.Log, agent, by string) ([]approvals.Request, error) {
	st, err := openApprovals(ctx, db, ApprovalsConfig{}, evidence, slog.New(slog.NewTextHandler(os.Stderr, nil)), func(approvals.Event) {})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.CancelAgent(ctx, agent, by)
}

func agentError(id string, err error) error {
	if errors.Is(err, agents.ErrNotFound) {
		return fmt.Errorf("no agent %s: %w", printable(id), err)
	}
	return fmt.Errorf("agent %s: %w", printable(id), err)
}

func printAgents(w io.Writer, list []agents.Agent) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tSTATUS\tNAME\tOWNER\tTENANT\tCREATED\tLAST SEEN")
	for _, a := range list {
		seen := "never"
		if !a.LastSeen.IsZero() {
			seen = a.LastSeen.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(a.ClientID), a.Status, printable(a.Name), printable(a.Owner),
			printable(a.Tenant), a.CreatedAt.UTC().Format(time.RFC3339), seen)
	}
	return tw.Flush()
}
