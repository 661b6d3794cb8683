package approvals

import (
	"context"
	"time"
)

// Notifier tells approvers that a request waits for them. Notify runs off
// the request path, in its own goroutine; its context is cancelled when the
// Store closes.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Notification is what approvers are told; it is the webhook's JSON body.
type Notification struct {
	ID              string    `json:"id"`
	BindingMessage  string    `json:"binding_message"`
	User            string    `json:"user"`
	Agent           string    `json:"agent"`
	Tenant          string    `json:"tenant"`
	Resource        string    `json:"resource"`
	Tool            string    `json:"tool"`
	ArgumentsSHA256 string    `json:"arguments_sha256"`
	Approvers       []string  `json:"approvers"`
	ExpiresAt       time.Time `json:"expires_at"`
}

func notificationOf(r Request) Notification {
	approvers := r.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	return Notification{
		ID:              r.ID,
		BindingMessage:  r.BindingMessage,
		User:            r.Call.User,
		Agent:           r.Call.Agent,
		Tenant:          r.Call.Tenant,
		Resource:        r.Call.Resource,
		Tool:            r.Call.Action,
		ArgumentsSHA256: r.Call.ArgumentsSHA256,
		Approvers:       approvers,
		ExpiresAt:       r.ExpiresAt.UTC(),
	}
}
