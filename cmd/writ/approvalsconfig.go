package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

// ApprovalsConfig configures human approval of sensitive calls.
type ApprovalsConfig struct {
	// TTL is how long a request waits for a human when the decision names
	// no ttl. Default 10m.
	TTL time.Duration `yaml:"ttl"`
	// Interval is the retry interval told to agents. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Webhook notifies approvers of each new request, signed with
	// HMAC-SHA256 (Writ-Signature header); none by default.
	Webhook struct {
		URL        string `yaml:"url"`         // http(s) URL receiving a POST per request
		SecretFile string `yaml:"secret_file"` // file holding the signing secret (32 bytes or more, 0600)
	} `yaml:"webhook"`
	// CIBA clients may start approvals themselves (OpenID CIBA Core 1.0,
	// poll and ping) at /bc-authorize and redeem them at /token. The
	// endpoints are served only when at least one client is configured.
	CIBA struct {
		Clients []CIBAClient `yaml:"clients"`
	} `yaml:"ciba"`
}

// CIBAClient is one client allowed to use CIBA.
type CIBAClient struct {
	ClientID             string `yaml:"client_id"`
	SecretSHA256         string `yaml:"secret_sha256"`         // hex SHA-256 of its secret, for client_secret_basic
	JWKSFile             string `yaml:"jwks_file"`             // its public keys, for private_key_jwt
	DeliveryMode         string `yaml:"delivery_mode"`         // poll (default) or ping
	NotificationEndpoint string `yaml:"notification_endpoint"` // ping mode's callback
}

func (c ApprovalsConfig) validate() error {
	if c.TTL < 0 || c.Interval < 0 {
		return errors.New("config: approvals: ttl and interval must not be negative")
	}
	if (c.Webhook.URL == "") != (c.Webhook.SecretFile == "") {
		return errors.New("config: approvals.webhook: url and secret_file must be set together")
	}
	if c.Webhook.URL != "" {
		u, err := url.Parse(c.Webhook.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("config: approvals.webhook.url: %q is not an http(s) URL", c.Webhook.URL)
		}
	}
	return nil
}

// openApprovals opens the approval store on writ's database. Every step of
// every request becomes an evidence record of its own (outcome
// "approval_<step>"), joined to the decisions by the approval id.
func openApprovals(ctx context.Context, db *store.DB, cfg ApprovalsConfig, evidence *audit.Log, logger *slog.Logger, also func(approvals.Event)) (*approvals.Store, error) {
	opts := approvals.Options{Logger: logger, DefaultTTL: cfg.TTL, Interval: cfg.Interval}
	if cfg.Webhook.URL != "" {
		secret, err := os.ReadFile(cfg.Webhook.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("approvals.webhook.secret_file: %w", err)
		}
		wh, err := approvals.NewWebhook(approvals.WebhookConfig{URL: cfg.Webhook.URL, Secret: approvals.Secret([]byte(strings.TrimSpace(string(secret)))), Logger: logger})
		if err != nil {
			return nil, err
		}
		opts.Notifier = wh
	}
	opts.OnEvent = func(e approvals.Event) {
		rec := audit.Record{
			DecisionID: uuid.NewString(),
			Time:       e.Time,
			User:       e.Call.User, Agent: e.Call.Agent, Tenant: e.Call.Tenant,
			Request:  audit.Request{Protocol: "approval", Resource: e.Call.Resource, MCPName: e.Call.Action, ArgumentsDigest: e.Call.ArgumentsSHA256},
			Outcome:  "approval_" + string(e.Kind),
			Reason:   approvalEventReason(e),
			Approval: &audit.Approval{ID: e.ID, Approver: e.Approver, Outcome: string(e.Kind)},
		}
		if err := evidence.Append(rec); err != nil {
			logger.Error("approval step not recorded", "approval_id", e.ID, "step", e.Kind, "error", err)
		}
		also(e)
	}
	return approvals.Open(ctx, db, opts)
}

func approvalEventReason(e approvals.Event) string {
	switch {
	case e.Err != "":
		return e.Err
	case e.DecisionID != "":
		return "consumed by decision " + e.DecisionID
	case e.Approver != "":
		return string(e.Kind) + " by " + e.Approver
	}
	return string(e.Kind)
}
