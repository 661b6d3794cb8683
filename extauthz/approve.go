package extauthz

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/policies"
)

// Approvals gates calls a decision says need a human's approval: it opens
// (or finds) the request bound to this exact call, or takes one use of an
// approval already given.
type Approvals interface {
	Gate(ctx context.Context, call approvals.Call, req approvals.Requirement) (approvals.Result, error)
}

// approve is the approval phase. A decision that requires approval passes
// only when a human has approved this exact call (user, agent, tenant,
// resource, action and the canonical arguments); then the policy decides
// again, seeing the approval in input.approval, and the writ token carries
// the approval id. Otherwise the agent is told what to wait for.
func (s *Server) approve(ctx context.Context, d *description, identity *policies.Identity, dec policies.Decision, rec *audit.Record) (policies.Decision, verdict, bool) {
	if s.deps.Approvals == nil {
		return dec, approvalRequired(dec), false
	}
	if identity == nil || (identity.User == "" && identity.Agent == "") {
		return dec, verdict{outcome: "deny", cause: causeApproval, status: 403, errorCode: "access_denied",
			reason: "approval requires a verified caller"}, false
	}
	req := dec.Approval
	call := approvals.Call{
		User: identity.User, Agent: identity.Agent, Tenant: identity.Tenant,
		Action: callAction(d), ArgumentsSHA256: d.argumentsDigest, DecisionID: rec.DecisionID,
	}
	if call.Tenant == "" {
		call.Tenant = rec.Tenant
	}
	if r := d.input.Resource; r != nil {
		call.Resource = r.ID
	}
	if m := d.input.MCP; m != nil && m.Arguments != nil {
		// What the approver sees is what the digest covers.
		if canonical, err := appendCanonical(nil, m.Arguments); err == nil {
			call.Arguments = string(canonical)
		}
	}
	requirement := approvals.Requirement{
		BindingMessage: req.BindingMessage, Approvers: req.Approvers, TTL: req.TTL, Uses: req.Uses, Window: req.Window,
	}
	res, err := s.deps.Approvals.Gate(ctx, call, requirement)
	if err == nil && res.Status == approvals.Pending {
		res, err = s.hold(ctx, d, call, requirement, res)
	}
	if err != nil {
		s.log.Error("approval gate failed", "decision_id", rec.DecisionID, "error", err)
		return dec, fault(503, causeApproval, "the approval service is unavailable"), false
	}
	rec.Approval = &audit.Approval{ID: res.ID, Approver: res.Approver, Outcome: string(res.Status), Requested: res.RequestedAt, Decided: res.DecidedAt}
	switch res.Status {
	case approvals.Approved:
	case approvals.Pending:
		return dec, approvalPending(res, rec.DecisionID), false
	case approvals.Denied:
		return dec, approvalAnswer("access_denied", "the approver denied this call", res, rec.DecisionID), false
	case approvals.Expired:
		return dec, approvalAnswer("expired_token", "the approval request expired; retry the call to open a new one", res, rec.DecisionID), false
	default:
		return dec, fault(500, causeApproval, fmt.Sprintf("unexpected approval status %q", res.Status)), false
	}

	// Approved: one use is taken. The policy decides again with the approval
	// in view; a policy that does not look at input.approval keeps its first
	// decision, which is an allow once approved.
	d.input.Approval = &policies.Approval{ID: res.ID, Status: string(approvals.Approved)}
	again, v, ok := s.decide(ctx, d, rec)
	if !ok {
		return again, v, false
	}
	if again.Approval == nil || !again.Approval.Required {
		if !again.Allow {
			return again, policyDenial(identity, again, s.resourceMetadata(d)), false
		}
		return again, verdict{}, true
	}
	return dec, verdict{}, true
}

// holdPoll is how often a held Check looks for the human's answer.
const holdPoll = 250 * time.Millisecond

// hold keeps a pending call waiting, on routes whose context asks for it
// (approval_hold, capped by check.max_approval_hold and kept below Envoy's
// ext_authz timeout by whoever configures the route), until the human
// answers or the hold runs out. The caller going away ends the hold.
func (s *Server) hold(ctx context.Context, d *description, call approvals.Call, req approvals.Requirement, res approvals.Result) (approvals.Result, error) {
	wait := s.holdFor(d)
	if wait <= 0 {
		return res, nil
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(min(holdPoll, wait))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, nil
		case <-deadline.C:
			return res, nil
		case <-tick.C:
		}
		next, err := s.deps.Approvals.Gate(ctx, call, req)
		if err != nil || next.Status != approvals.Pending {
			return next, err
		}
		res = next
	}
}

// holdFor reads the route's approval_hold, capped by the configuration.
func (s *Server) holdFor(d *description) time.Duration {
	r := d.input.Resource
	if r == nil || s.cfg.MaxApprovalHold <= 0 {
		return 0
	}
	v, ok := r.Extensions["approval_hold"]
	if !ok {
		return 0
	}
	hold, err := time.ParseDuration(v)
	if err != nil || hold <= 0 {
		return 0
	}
	return min(hold, s.cfg.MaxApprovalHold)
}

// callAction names what the call does for its fingerprint: the MCP method
// and name, or the HTTP method and path.
func callAction(d *description) string {
	if m := d.input.MCP; m != nil {
		return m.Method + " " + m.Name
	}
	return d.method + " " + d.path
}

// approvalPending tells the agent its call waits for a human:
// 403 {error: approval_pending, auth_req_id, expires_in, interval,
// binding_message, decision_id} with Retry-After.
func approvalPending(res approvals.Result, decisionID string) verdict {
	interval := max(int(res.Interval/time.Second), 1)
	body, _ := json.Marshal(struct {
		Error          string `json:"error"`
		AuthReqID      string `json:"auth_req_id"`
		ExpiresIn      int    `json:"expires_in"`
		Interval       int    `json:"interval"`
		BindingMessage string `json:"binding_message,omitempty"`
		DecisionID     string `json:"decision_id"`
	}{"approval_pending", res.ID, int(res.ExpiresIn / time.Second), interval, res.BindingMessage, decisionID})
	return verdict{outcome: "approval_pending", cause: causeApproval, status: 403, errorCode: "approval_pending",
		reason: "waiting for a human's approval", body: string(body),
		responseHeaders: map[string]string{"content-type": "application/json", "retry-after": strconv.Itoa(interval)}}
}

func approvalAnswer(code, reason string, res approvals.Result, decisionID string) verdict {
	body, _ := json.Marshal(struct {
		Error      string `json:"error"`
		Reason     string `json:"reason"`
		AuthReqID  string `json:"auth_req_id"`
		DecisionID string `json:"decision_id"`
	}{code, reason, res.ID, decisionID})
	return verdict{outcome: "deny", cause: causeApproval, status: 403, errorCode: code, reason: reason, body: string(body),
		responseHeaders: map[string]string{"content-type": "application/json"}}
}
