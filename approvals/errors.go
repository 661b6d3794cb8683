package approvals

import "errors"

var (
	// ErrNotFound means no approval request has the given id.
	ErrNotFound = errors.New("approvals: no such approval request")
	// ErrNotPending means the request was already approved, denied, consumed
	// or has expired, so it can no longer be decided.
	ErrNotPending = errors.New("approvals: request is not pending")
	// ErrSelfApproval means the approver is the agent that made the call: an
	// agent never decides its own request.
	ErrSelfApproval = errors.New("approvals: an agent cannot decide its own request")
	// ErrApproverRequired means Approve or Deny was called without an approver.
	ErrApproverRequired = errors.New("approvals: approver required")
	// ErrInvalidCall means the call cannot be fingerprinted as given.
	ErrInvalidCall = errors.New("approvals: invalid call")
	// ErrInvalidRequirement means the requirement's TTL, Uses or Window is
	// out of range.
	ErrInvalidRequirement = errors.New("approvals: invalid requirement")
	// ErrNoSchema means the database lacks the approvals tables.
	ErrNoSchema = errors.New("approvals: database has no approvals schema")
	// ErrClosed means the Store was closed.
	ErrClosed = errors.New("approvals: store closed")

	// ErrWebhookConfig means a webhook notifier was configured without a
	// usable URL or secret.
	ErrWebhookConfig = errors.New("approvals: invalid webhook configuration")
	// ErrWebhookRejected means the webhook receiver answered with a status
	// that retrying cannot fix (a 4xx other than 408 and 429).
	ErrWebhookRejected = errors.New("approvals: webhook rejected the notification")
	// ErrWebhookUndelivered means every delivery attempt failed.
	ErrWebhookUndelivered = errors.New("approvals: webhook not delivered")

	// ErrSignatureMalformed means a Writ-Signature header could not be parsed.
	ErrSignatureMalformed = errors.New("approvals: malformed webhook signature header")
	// ErrSignatureTimestamp means the signature's timestamp lies outside the
	// accepted tolerance (a replay, or a badly skewed clock).
	ErrSignatureTimestamp = errors.New("approvals: webhook signature timestamp outside tolerance")
	// ErrSignatureMismatch means no signature in the header matches the body.
	ErrSignatureMismatch = errors.New("approvals: webhook signature does not match")
)

// ErrNotAllowed means the approver is not among those who may decide the
// request: not the call's user, and not named in its approvers.
var ErrNotAllowed = errors.New("approvals: approver may not decide this request")
