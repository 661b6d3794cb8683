package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/writ-dev/writ/approvals"
)

// approvalsCommand runs `writ approvals list|show|approve|deny` against the
// data directory's store. It is an operator's tool: approve and deny take
// the approver's subject with --as and do not consult a request's approver
// list, but an agent still never decides its own request.
func approvalsCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: approvals takes a subcommand: list, show, approve or deny", errUsage)
	}
	sub := args[0]
	fs := newFlags("approvals " + sub)
	config := configFlags(fs)
	var all *bool
	var limit *int
	var as *string
	switch sub {
	case "list":
		all = fs.Bool("all", false, "list requests in every state, not only pending ones")
		limit = fs.Int("limit", 100, "the most requests to list, newest first")
	case "show":
	case "approve", "deny":
		as = fs.String("as", "", "the subject of the person deciding (recorded as user:SUBJECT)")
	default:
		return fmt.Errorf("%w: unknown approvals subcommand %q", errUsage, sub)
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
		return fmt.Errorf("%w: approvals list takes no arguments", errUsage)
	case sub != "list" && fs.NArg() != 1:
		return fmt.Errorf("%w: approvals %s takes one approval id", errUsage, sub)
	case as != nil && *as == "":
		return fmt.Errorf("%w: approvals %s needs --as SUBJECT", errUsage, sub)
	}
	db, err := openDataDir(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		return err
	}
	defer s.Close()

	switch sub {
	case "list":
		f := approvals.Filter{Status: approvals.Pending, Limit: *limit}
		if *all {
			f.Status = ""
		}
		reqs, err := s.List(ctx, f)
		if err != nil {
			return err
		}
		return printApprovals(stdout, reqs)
	case "show":
		r, err := s.Get(ctx, fs.Arg(0))
		if err != nil {
			return approvalError(fs.Arg(0), err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(approvals.ViewOf(r))
	}
	id := fs.Arg(0)
	r, err := s.Get(ctx, id)
	if err != nil {
		return approvalError(id, err)
	}
	who := approvals.Approver{Subject: *as}
	if who.Subject == r.Call.Agent || who.Name() == r.Call.Agent {
		return approvalError(id, approvals.ErrSelfApproval)
	}
	if sub == "approve" {
		err = s.Approve(ctx, id, who.Name())
	} else {
		err = s.Deny(ctx, id, who.Name())
	}
	if err != nil {
		return approvalError(id, err)
	}
	verb := map[string]string{"approve": "approved", "deny": "denied"}[sub]
	fmt.Fprintf(stdout, "approval request %s %s by %s\n", id, verb, who.Name())
	return nil
}

func approvalError(id string, err error) error {
	if errors.Is(err, approvals.ErrNotFound) {
		return fmt.Errorf("no approval request %s: %w", id, err)
	}
	return fmt.Errorf("approval request %s: %w", id, err)
}

func printApprovals(w io.Writer, reqs []approvals.Request) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tUSER\tAGENT\tTENANT\tRESOURCE\tTOOL\tEXPIRES\tBINDING MESSAGE")
	for _, r := range reqs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, printable(r.Call.User), printable(r.Call.Agent),
			printable(r.Call.Tenant), printable(r.Call.Resource), printable(r.Call.Action),
			r.ExpiresAt.UTC().Format(time.RFC3339), printable(r.BindingMessage))
	}
	return tw.Flush()
}

// printable keeps what an agent wrote from steering the operator's
// terminal: control characters (escapes, newlines, tabs) become spaces.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
}
