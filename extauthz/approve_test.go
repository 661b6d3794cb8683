package extauthz_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/test/writtest"
)

// approvalRig is the Check pipeline with the built-in policy and a real
// approvals store: a high-sensitivity route needs a human's approval.
func approvalRig(t *testing.T) (*rig, *approvals.Store) {
	t.Helper()
	db, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := approvals.Open(t.Context(), db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newRig(t, rigOptions{approvals: s}), s
}

var highSensitivity = map[string]string{"resource": "mcp://payments", "tenant": "tenant-a", "sensitivity": "high", "mcp": "true"}

type pendingBody struct {
	Error          string `json:"error"`
	AuthReqID      string `json:"auth_req_id"`
	ExpiresIn      int    `json:"expires_in"`
	Interval       int    `json:"interval"`
	BindingMessage string `json:"binding_message"`
}

func checkRefund(t *testing.T, r *rig, tok string, amount int) (allowed bool, approvalID string, pending pendingBody) {
	t.Helper()
	resp, err := r.srv.Check(context.Background(), writtest.ToolCall("refund", map[string]any{"amount": amount}, tok, highSensitivity))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() != nil {
		claims := jwt.MapClaims{}
		bearer := writtest.Header(resp, "authorization")
		if _, _, err := jwt.NewParser().ParseUnverified(bearer[len("Bearer "):], claims); err != nil {
			t.Fatal(err)
		}
		id, _ := claims["approval_id"].(string)
		return true, id, pendingBody{}
	}
	denied := resp.GetDeniedResponse()
	if denied.GetStatus().GetCode() != 403 {
		t.Fatalf("want 403, got %v", resp)
	}
	if err := json.Unmarshal([]byte(denied.GetBody()), &pending); err != nil {
		t.Fatalf("body %s: %v", denied.GetBody(), err)
	}
	return false, "", pending
}

func TestApprovalGate(t *testing.T) {
	r, s := approvalRig(t)
	tok := r.token(t, "alice", "pay-bot")

	allowed, _, p := checkRefund(t, r, tok, 120)
	if allowed || p.Error != "approval_pending" || len(p.AuthReqID) < 22 || p.ExpiresIn <= 0 || p.Interval < 1 ||
		p.BindingMessage != "Allow pay-bot to call refund for alice?" {
		t.Fatalf("first call: allowed=%t body=%+v", allowed, p)
	}
	if rec := r.records.last(t); rec.Outcome != "approval_pending" || rec.Approval == nil || rec.Approval.ID != p.AuthReqID {
		t.Errorf("evidence of the pending call: %+v", rec)
	}
	if req, err := s.Get(t.Context(), p.AuthReqID); err != nil || req.Call.Arguments != `{"amount":120}` {
		t.Errorf("the approver would not see the arguments: %v %q", err, req.Call.Arguments)
	}
	// The identical call while pending shares the request.
	if _, _, again := checkRefund(t, r, tok, 120); again.AuthReqID != p.AuthReqID {
		t.Errorf("identical pending call opened another request: %s vs %s", again.AuthReqID, p.AuthReqID)
	}
	// The agent cannot approve its own request.
	if err := s.Approve(t.Context(), p.AuthReqID, "pay-bot"); err == nil {
		t.Fatal("an agent approved its own request")
	}
	if err := s.Approve(t.Context(), p.AuthReqID, "alice"); err != nil {
		t.Fatal(err)
	}
	// Other arguments: a new pending request, never an allow.
	if allowed, _, other := checkRefund(t, r, tok, 9999); allowed || other.Error != "approval_pending" || other.AuthReqID == p.AuthReqID {
		t.Fatalf("tampered arguments: allowed=%t %+v", allowed, other)
	}
	// The approved call passes once, its token naming the approval.
	allowed, approvalID, _ := checkRefund(t, r, tok, 120)
	if !allowed || approvalID != p.AuthReqID {
		t.Fatalf("approved call: allowed=%t approval_id=%q", allowed, approvalID)
	}
	if rec := r.records.last(t); rec.Approval == nil || rec.Approval.Approver != "alice" || rec.Approval.Outcome != "approved" {
		t.Errorf("evidence of the approved call: %+v", rec.Approval)
	}
	// And only once.
	if allowed, _, next := checkRefund(t, r, tok, 120); allowed || next.Error != "approval_pending" || next.AuthReqID == p.AuthReqID {
		t.Fatalf("second retry: allowed=%t %+v", allowed, next)
	}
}

func TestApprovalDenied(t *testing.T) {
	r, s := approvalRig(t)
	tok := r.token(t, "alice", "pay-bot")
	_, _, p := checkRefund(t, r, tok, 5)
	if err := s.Deny(t.Context(), p.AuthReqID, "alice"); err != nil {
		t.Fatal(err)
	}
	if allowed, _, d := checkRefund(t, r, tok, 5); allowed || d.Error != "access_denied" || d.AuthReqID != p.AuthReqID {
		t.Fatalf("denied: allowed=%t %+v", allowed, d)
	}
}

// 50 concurrent identical retries after an approval with one use: exactly
// one passes.
func TestApprovalSingleUseUnderConcurrency(t *testing.T) {
	r, s := approvalRig(t)
	tok := r.token(t, "alice", "pay-bot")
	_, _, p := checkRefund(t, r, tok, 42)
	if err := s.Approve(t.Context(), p.AuthReqID, "alice"); err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := r.srv.Check(context.Background(), writtest.ToolCall("refund", map[string]any{"amount": 42}, tok, highSensitivity))
			if err == nil && resp.GetOkResponse() != nil {
				allowed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d of 50 concurrent retries passed, want exactly 1", n)
	}
}

// Hold mode: on a route with approval_hold, Check waits for the human
// instead of answering pending at once.
func TestApprovalHold(t *testing.T) {
	db, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := approvals.Open(t.Context(), db, approvals.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := newRig(t, rigOptions{approvals: s, cfg: extauthz.Config{MaxApprovalHold: 30 * time.Second}})
	tok := r.token(t, "alice", "pay-bot")
	held := map[string]string{"resource": "mcp://payments", "tenant": "tenant-a", "sensitivity": "high", "mcp": "true", "approval_hold": "20s"}

	done := make(chan bool, 1)
	go func() {
		resp, err := r.srv.Check(context.Background(), writtest.ToolCall("refund", map[string]any{"amount": 7}, tok, held))
		done <- err == nil && resp.GetOkResponse() != nil
	}()
	// Approve the request as soon as the held Check has opened it.
	var id string
	waitFor(t, func() bool {
		reqs, err := s.List(context.Background(), approvals.Filter{Status: approvals.Pending})
		if err == nil && len(reqs) == 1 {
			id = reqs[0].ID
			return true
		}
		return false
	})
	if err := s.Approve(t.Context(), id, "alice"); err != nil {
		t.Fatal(err)
	}
	if !<-done {
		t.Fatal("the held Check did not pass once approved")
	}

	// A route without approval_hold answers pending at once.
	allowed, _, p := checkRefund(t, r, tok, 8)
	if allowed || p.Error != "approval_pending" {
		t.Fatalf("unheld route: allowed=%t %+v", allowed, p)
	}
}
