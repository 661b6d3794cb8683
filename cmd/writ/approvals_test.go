package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/store"
)

// openApproval opens one pending approval request in a fresh data
// directory and returns the directory and the request's id.
func openApproval(t *testing.T, binding string) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Gate(ctx, approvals.Call{
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Resource: "mcp://payments", Action: "refund",
		ArgumentsSHA256: strings.Repeat("ab", 32), DecisionID: "dec-1",
	}, approvals.Requirement{BindingMessage: binding, Approvers: []string{"group:finance"}})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res.ID
}

func runApprovals(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := approvalsCommand(context.Background(), args, &out)
	return out.String(), err
}

func storedApproval(t *testing.T, dir, id string) approvals.Request {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApprovalsListShow(t *testing.T) {
	dir, id := openApproval(t, "Refund $120\x1b[2J to ACME?")

	out, err := runApprovals(t, "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{id, "pending", "user-7", "agent-3", "tenant-a", "mcp://payments", "refund", "Refund $120 [2J to ACME?"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("list row lacks %q: %s", want, lines[1])
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("list printed a terminal escape from the binding message")
	}

	out, err = runApprovals(t, "show", "--data-dir", dir, id)
	if err != nil {
		t.Fatal(err)
	}
	var v approvals.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("show is not JSON: %v\n%s", err, out)
	}
	if v.ID != id || v.Status != approvals.Pending || v.Tool != "refund" || v.ArgumentsSHA256 != strings.Repeat("ab", 32) {
		t.Errorf("show: %+v", v)
	}

	if _, err := runApprovals(t, "approve", "--data-dir", dir, "--as", "alice", id); err != nil {
		t.Fatal(err)
	}
	out, _ = runApprovals(t, "list", "--data-dir", dir)
	if strings.Contains(out, id) {
		t.Errorf("list shows a decided request:\n%s", out)
	}
	out, _ = runApprovals(t, "list", "--all", "--data-dir", dir)
	if !strings.Contains(out, id) || !strings.Contains(out, "approved") {
		t.Errorf("list --all:\n%s", out)
	}

	if _, err := runApprovals(t, "show", "--data-dir", dir, "nope"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("show unknown: %v", err)
	}
}

func TestApprovalsDecide(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		status  approvals.Status
		by      string
	}{
		{"approve", []string{"approve", "--as", "alice"}, nil, approvals.Approved, "user:alice"},
		{"deny", []string{"deny", "--as", "bob"}, nil, approvals.Denied, "user:bob"},
		{"agent approves itself", []string{"approve", "--as", "agent-3"}, approvals.ErrSelfApproval, approvals.Pending, ""},
		{"agent denies itself", []string{"deny", "--as", "agent-3"}, approvals.ErrSelfApproval, approvals.Pending, ""},
		{"no approver", []string{"approve"}, errUsage, approvals.Pending, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, id := openApproval(t, "Refund $120 to ACME?")
			args := append(append([]string{}, tt.args...), "--data-dir", dir, id)
			out, err := runApprovals(t, args...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !strings.Contains(out, id) {
				t.Errorf("output %q", out)
			}
			r := storedApproval(t, dir, id)
			if r.Status != tt.status || r.Approver != tt.by {
				t.Errorf("stored %s by %q, want %s by %q", r.Status, r.Approver, tt.status, tt.by)
			}
		})
	}
}

func TestApprovalsDecideTwice(t *testing.T) {
	dir, id := openApproval(t, "Refund $120 to ACME?")
	if _, err := runApprovals(t, "deny", "--as", "alice", "--data-dir", dir, id); err != nil {
		t.Fatal(err)
	}
	if _, err := runApprovals(t, "approve", "--as", "alice", "--data-dir", dir, id); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("approve after deny: %v", err)
	}
	if _, err := runApprovals(t, "approve", "--as", "alice", "--data-dir", dir, "unknown"); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("approve unknown: %v", err)
	}
}

func TestApprovalsUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"grant"},
		{"show", "--data-dir", dir},
		{"list", "--data-dir", dir, "extra"},
		{"approve", "--as", "alice", "--data-dir", dir},
	} {
		if _, err := runApprovals(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want usage error", args, err)
		}
	}
	if _, err := runApprovals(t, "list", "--data-dir", dir+"/missing"); err == nil {
		t.Error("list on a missing data directory succeeded")
	}
}
