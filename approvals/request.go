package approvals

import "time"

// Status is where an approval request stands.
//
//	pending ──Approve──► approved ──last use──► consumed
//	   │                    │
//	   ├──Deny──► denied    └──TTL or window over──► expired
//	   └──TTL over──► expired
type Status string

const (
	// Pending: waiting for a human.
	Pending Status = "pending"
	// Approved: the identical call passes while uses remain and before expiry.
	Approved Status = "approved"
	// Denied: a human said no; the identical call is refused until the
	// denial's expiry (one TTL after it was given).
	Denied Status = "denied"
	// Expired: nobody decided in time, or an approval ran out of time
	// before it was used up.
	Expired Status = "expired"
	// Consumed: every granted use was taken.
	Consumed Status = "consumed"
)

// UnlimitedUses lets an approval with a Window pass any number of times
// within that window.
const UnlimitedUses = -1

// Requirement is what policy asks of an approval (the decision's
// approval object). When a request for the same call is already pending,
// that request's requirement stands and this one is ignored.
type Requirement struct {
	// BindingMessage is shown to the approver and to the agent.
	BindingMessage string
	// Approvers name who may decide (user:…, group:…, role:…); writ passes
	// them to notifiers and stores them, and does not interpret them here.
	Approvers []string
	// TTL is how long the request waits for a decision, and how long a
	// denial stands once given. Zero means Options.DefaultTTL.
	TTL time.Duration
	// Uses is how many identical calls an approval lets through. Zero means
	// 1; UnlimitedUses requires a Window.
	Uses int
	// Window, when positive, is how long an approval stays usable counted
	// from the moment it was given. Zero means until the request's TTL runs
	// out.
	Window time.Duration
}

// Result is Gate's answer for one call.
type Result struct {
	Status Status
	// ID is the request's auth_req_id.
	ID string
	// ExpiresIn is how long a pending request keeps waiting.
	ExpiresIn time.Duration
	// Interval is how long the agent should wait between retries.
	Interval       time.Duration
	BindingMessage string
	// Approver and DecidedAt say who decided and when (approved, denied).
	Approver    string
	RequestedAt time.Time
	DecidedAt   time.Time
	// UsesLeft after this call (approved); UnlimitedUses for a window
	// approval without a count.
	UsesLeft int
}

// Request is a stored approval request.
type Request struct {
	ID string
	// Fingerprint is Fingerprint(Call).
	Fingerprint string
	// Call is the bound call; Call.DecisionID is the decision that opened it.
	Call           Call
	BindingMessage string
	Approvers      []string
	// Status is the effective status: a pending or approved request past
	// its expiry reads as Expired even before it is swept.
	Status     Status
	Approver   string
	CreatedAt  time.Time
	DecidedAt  time.Time // zero while pending
	ExpiresAt  time.Time
	TTL        time.Duration
	Window     time.Duration
	Uses       int // granted uses, or UnlimitedUses
	UsesLeft   int
	ConsumedBy []string // decision ids that used the approval, in order (Get only)
	stored     Status
	expiryTold bool
}

// Filter selects requests for List. Empty fields match everything.
type Filter struct {
	Status Status
	User   string
	Agent  string
	Tenant string
	// Limit caps the number of requests; zero means 100.
	Limit int
}

// EventKind names a step in a request's life.
type EventKind string

const (
	EventOpened       EventKind = "opened"
	EventNotified     EventKind = "notified"
	EventNotifyFailed EventKind = "notify_failed"
	EventApproved     EventKind = "approved"
	EventDenied       EventKind = "denied"
	EventConsumed     EventKind = "consumed"
	EventExpired      EventKind = "expired"
)

// Event reports one step of a request, after it is committed, so the caller
// can write it to the evidence log.
type Event struct {
	Kind        EventKind
	Time        time.Time
	ID          string
	Fingerprint string
	Call        Call // as stored: Call.DecisionID is the decision that opened it
	// Approver is set on approved and denied.
	Approver string
	// DecisionID is the decision that opened (opened) or used (consumed)
	// the request.
	DecisionID string
	// UsesLeft after a consumed event.
	UsesLeft int
	// Err describes a failed notification (notify_failed).
	Err string
}
