package approvals

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a webhook's signature:
//
//	Writ-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
const SignatureHeader = "Writ-Signature"

// Webhook defaults.
const (
	DefaultWebhookAttempts = 5
	DefaultWebhookTimeout  = 10 * time.Second
	// DefaultSignatureTolerance is how far a signature's timestamp may be
	// from the receiver's clock.
	DefaultSignatureTolerance = 5 * time.Minute
	// MinWebhookSecret is the shortest secret accepted, in bytes.
	MinWebhookSecret = 32
)

// Secret is a webhook signing secret. It prints and logs as REDACTED.
type Secret []byte

// String implements fmt.Stringer.
func (Secret) String() string { return "REDACTED" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// URL receives a POST per new request; http or https.
	URL string
	// Secret signs every delivery; at least MinWebhookSecret bytes.
	Secret Secret
	// Client sends the requests; one with DefaultWebhookTimeout when nil.
	Client *http.Client
	// MaxAttempts caps deliveries per notification; DefaultWebhookAttempts
	// when zero.
	MaxAttempts int
	// Backoff is the wait before retry number n (1 for the first retry);
	// DefaultBackoff when nil.
	Backoff func(n int) time.Duration
	// Now stamps signatures; time.Now when nil.
	Now func() time.Time
	// Logger receives a line per failed attempt; nothing when nil.
	Logger *slog.Logger
}

// DefaultBackoff waits 1s before the first retry, doubling up to 30s.
func DefaultBackoff(n int) time.Duration {
	const limit = 30 * time.Second
	if n < 1 {
		n = 1
	}
	if n > 6 {
		return limit
	}
	return min(time.Second<<(n-1), limit)
}

// Webhook is a Notifier that POSTs each Notification as JSON, signed with
// HMAC-SHA256, retrying network errors, 408, 429 and 5xx answers with
// capped exponential backoff.
type Webhook struct {
	url      string
	secret   Secret
	client   *http.Client
	attempts int
	backoff  func(int) time.Duration
	now      func() time.Time
	log      *slog.Logger
}

// NewWebhook checks cfg and returns the notifier.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: URL must be an absolute http or https URL", ErrWebhookConfig)
	}
	if len(cfg.Secret) < MinWebhookSecret {
		return nil, fmt.Errorf("%w: secret shorter than %d bytes", ErrWebhookConfig, MinWebhookSecret)
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("%w: negative attempts", ErrWebhookConfig)
	}
	w := &Webhook{
		url: cfg.URL, secret: cfg.Secret, client: cfg.Client, attempts: cfg.MaxAttempts,
		backoff: cfg.Backoff, now: cfg.Now, log: cfg.Logger,
	}
	if w.client == nil {
		w.client = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	if w.attempts == 0 {
		w.attempts = DefaultWebhookAttempts
	}
	if w.backoff == nil {
		w.backoff = DefaultBackoff
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

// Notify delivers n, retrying until it is accepted, the receiver rejects
// it (ErrWebhookRejected), attempts run out (ErrWebhookUndelivered) or ctx
// ends. Each attempt is signed afresh.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("approvals: encode notification: %w", err)
	}
	var last error
	for attempt := 1; attempt <= w.attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(w.backoff(attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: %w (last: %w)", ErrWebhookUndelivered, ctx.Err(), last)
			case <-t.C:
			}
		}
		retry, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry {
			return err
		}
		last = err
		w.log.Warn("approval webhook attempt failed", "approval_id", n.ID, "attempt", attempt, "error", err)
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w (last: %w)", ErrWebhookUndelivered, ctx.Err(), last)
		}
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrWebhookUndelivered, w.attempts, last)
}

// post makes one attempt and says whether a failure is worth retrying.
func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("approvals: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "writ")
	req.Header.Set(SignatureHeader, SignWebhook(w.secret, w.now(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		// Network errors are retried; a cancelled ctx ends the retries in
		// Notify.
		return true, fmt.Errorf("approvals: webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusRequestTimeout:
		return true, fmt.Errorf("approvals: webhook answered %d", c)
	default:
		return false, fmt.Errorf("%w: status %d", ErrWebhookRejected, c)
	}
}

// SignWebhook returns the Writ-Signature header value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a delivery the way a receiver should:
//
//  1. read the raw request body, before any JSON decoding;
//  2. split the Writ-Signature header on "," into key=value pairs: exactly
//     one t (unix seconds) and one or more v1 (hex);
//  3. refuse t further than tolerance from now (DefaultSignatureTolerance
//     when tolerance is zero), which bounds replays;
//  4. compute hex(HMAC-SHA256(secret, t + "." + body)) and compare it with
//     each v1 in constant time (hmac.Equal); accept if one matches.
//
// It returns nil, or an error wrapping ErrSignatureMalformed,
// ErrSignatureTimestamp or ErrSignatureMismatch.
func VerifyWebhook(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	if len(header) > 4096 {
		return fmt.Errorf("%w: header too long", ErrSignatureMalformed)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: element without '='", ErrSignatureMalformed)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrSignatureMalformed)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex SHA-256 MAC", ErrSignatureMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: needs t and v1", ErrSignatureMalformed)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 || strconv.FormatInt(unix, 10) != ts {
		return fmt.Errorf("%w: t is not unix seconds", ErrSignatureMalformed)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureTimestamp
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
