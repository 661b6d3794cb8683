// Package approvals binds a human's out-of-band yes or no to one exact call.
//
// A call is identified by its Fingerprint: user, agent, tenant, resource,
// action or tool, and the SHA-256 of its arguments in RFC 8785 canonical
// JSON. When policy requires approval, Gate either lets the call pass by
// taking one use of a matching approval, or answers with the request the
// call waits on (pending, denied, expired), opening a new one and notifying
// approvers when there is none. Requests live in writ's database and
// survive a restart; single use is enforced with one conditional UPDATE, so
// of many concurrent identical retries exactly one passes.
//
//	s, err := approvals.Open(ctx, db, approvals.Options{Notifier: webhook, OnEvent: record})
//	res, err := s.Gate(ctx, approvals.Call{User: "user-7", Agent: "agent-3", Tenant: "tenant-a",
//		Resource: "mcp://payments", Action: "refund", ArgumentsSHA256: digest, DecisionID: decisionID},
//		approvals.Requirement{BindingMessage: "Refund $120 to ACME?", Approvers: []string{"group:finance"}})
//	switch res.Status {
//	case approvals.Approved: // mint a token carrying res.ID
//	case approvals.Pending:  // 403 approval_pending with res.ID, res.ExpiresIn, res.Interval
//	case approvals.Denied:   // access_denied
//	case approvals.Expired:  // expired_token
//	}
//	err = s.Approve(ctx, res.ID, "user:alice") // from the approver's side
//
// Every step of a request (opened, notified, approved, denied, consumed,
// expired) is reported to Options.OnEvent for the evidence log.
//
// Approvers decide through Handler (a JSON API under /approvals, bearer
// tokens only) or Inbox (a server-rendered page under /inbox with a session
// cookie and CSRF tokens). Both take an Authenticator that turns a token
// into an Approver, and let decide only the call's user or someone named in
// the request's approvers (user:…, group:…, role:…) — never the call's
// agent:
//
//	mux.Handle("/approvals/", approvals.Handler(s, auth, approvals.HandlerOptions{}))
//	mux.Handle("/inbox/", approvals.Inbox(s, auth, approvals.HandlerOptions{}))
//
// Webhook is the first Notifier: it POSTs a signed JSON Notification, and
// VerifyWebhook is the recipe a receiver follows to check it.
package approvals
