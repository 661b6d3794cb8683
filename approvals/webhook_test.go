package approvals_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/writ-dev/writ/approvals"
)

var (
	testSecret = approvals.Secret("0123456789abcdef0123456789abcdef")
	testNow    = time.Unix(1772366400, 0)
	testBody   = []byte(`{"id":"abc"}`)
	// validSig was computed independently with Python's hmac module.
	validSig = "t=1772366400,v1=6eff21b8ce83389f7b1d42f5587b849be49a63e31931abe752d4d7d1905c2cb3"
)

func TestVerifyWebhook(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", testSecret, validSig, testBody, testNow, nil},
		{"valid, order swapped", testSecret, "v1=6eff21b8ce83389f7b1d42f5587b849be49a63e31931abe752d4d7d1905c2cb3, t=1772366400", testBody, testNow, nil},
		{"valid among several v1", testSecret, "t=1772366400,v1=" + strings.Repeat("00", 32) + ",v1=6eff21b8ce83389f7b1d42f5587b849be49a63e31931abe752d4d7d1905c2cb3", testBody, testNow, nil},
		{"unknown scheme ignored", testSecret, validSig + ",v0=whatever", testBody, testNow, nil},
		{"at tolerance", testSecret, validSig, testBody, testNow.Add(5 * time.Minute), nil},
		{"tampered body", testSecret, validSig, []byte(`{"id":"abd"}`), testNow, approvals.ErrSignatureMismatch},
		{"other secret", []byte("fedcba9876543210fedcba9876543210"), validSig, testBody, testNow, approvals.ErrSignatureMismatch},
		{"too old", testSecret, validSig, testBody, testNow.Add(5*time.Minute + time.Second), approvals.ErrSignatureTimestamp},
		{"from the future", testSecret, validSig, testBody, testNow.Add(-6 * time.Minute), approvals.ErrSignatureTimestamp},
		{"timestamp changed", testSecret, strings.Replace(validSig, "t=1772366400", "t=1772366401", 1), testBody, testNow, approvals.ErrSignatureMismatch},
		{"no timestamp", testSecret, "v1=6eff21b8ce83389f7b1d42f5587b849be49a63e31931abe752d4d7d1905c2cb3", testBody, testNow, approvals.ErrSignatureMalformed},
		{"no signature", testSecret, "t=1772366400", testBody, testNow, approvals.ErrSignatureMalformed},
		{"two timestamps", testSecret, "t=1772366400," + validSig, testBody, testNow, approvals.ErrSignatureMalformed},
		{"signed timestamp", testSecret, strings.Replace(validSig, "t=", "t=+", 1), testBody, testNow, approvals.ErrSignatureMalformed},
		{"short v1", testSecret, "t=1772366400,v1=6eff", testBody, testNow, approvals.ErrSignatureMalformed},
		{"not hex", testSecret, "t=1772366400,v1=" + strings.Repeat("zz", 32), testBody, testNow, approvals.ErrSignatureMalformed},
		{"empty", testSecret, "", testBody, testNow, approvals.ErrSignatureMalformed},
		{"huge", testSecret, validSig + strings.Repeat(",x=y", 2000), testBody, testNow, approvals.ErrSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := approvals.VerifyWebhook(tt.secret, tt.header, tt.body, tt.now, 0)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tt.want)
			}
		})
	}
	if got := approvals.SignWebhook(testSecret, testNow, testBody); got != validSig {
		t.Errorf("SignWebhook = %s, want %s", got, validSig)
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	file, err := os.Open("testdata/webhook_signatures.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			f.Add(line, testBody)
		}
	}
	tsRE := regexp.MustCompile(`(?:^|,)\s*t=([0-9]+)`)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := approvals.VerifyWebhook(testSecret, header, body, testNow, 0)
		if err != nil {
			for _, want := range []error{approvals.ErrSignatureMalformed, approvals.ErrSignatureTimestamp, approvals.ErrSignatureMismatch} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// Accepted: the header must carry the MAC of this very body.
		m := tsRE.FindStringSubmatch(header)
		if m == nil {
			t.Fatalf("accepted %q without a timestamp", header)
		}
		var unix int64
		fmt.Sscan(m[1], &unix)
		sig := approvals.SignWebhook(testSecret, time.Unix(unix, 0), body)
		if !strings.Contains(strings.ToLower(header), sig[strings.Index(sig, "v1="):]) {
			t.Fatalf("accepted %q for a body it does not sign", header)
		}
	})
}

// receiver is an approver-side webhook endpoint that answers with the
// queued statuses (200 once they run out) and keeps every verified body.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	hangups  int // connections to drop before answering
	attempts int
	verified [][]byte
	errs     []error
	hit      chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.attempts++
	if r.hangups > 0 {
		r.hangups--
		r.mu.Unlock()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	if err := approvals.VerifyWebhook(testSecret, req.Header.Get(approvals.SignatureHeader), body, time.Now(), 0); err != nil {
		r.errs = append(r.errs, err)
	} else {
		r.verified = append(r.verified, body)
	}
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	if r.hit != nil {
		r.hit <- struct{}{}
	}
}

func newWebhook(t *testing.T, srv *httptest.Server, cfg approvals.WebhookConfig) (*approvals.Webhook, *[]int) {
	t.Helper()
	var waits []int
	var mu sync.Mutex
	cfg.URL, cfg.Secret, cfg.Client = srv.URL, testSecret, srv.Client()
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, n)
			return 0
		}
	}
	w, err := approvals.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, &waits
}

var note = approvals.Notification{
	ID: "req-1", BindingMessage: "Refund $120 to ACME?", User: "user-7", Agent: "agent-3", Tenant: "tenant-a",
	Resource: "mcp://payments", Tool: "refund", ArgumentsSHA256: digestA, Approvers: []string{"group:finance"},
	ExpiresAt: time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC),
}

func TestWebhookDelivery(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int
		hangups   int
		attempts  int
		wantErr   error
		wantTries int
		wantWaits []int
	}{
		{"delivered first time", nil, 0, 0, nil, 1, nil},
		{"retried on 503 then delivered", []int{503, 503}, 0, 0, nil, 3, []int{1, 2}},
		{"retried on 429 and 500", []int{429, 500}, 0, 0, nil, 3, []int{1, 2}},
		{"retried after a dropped connection", nil, 1, 0, nil, 2, []int{1}},
		{"4xx is final", []int{400}, 0, 0, approvals.ErrWebhookRejected, 1, nil},
		{"gives up", []int{503, 503, 503, 503}, 0, 3, approvals.ErrWebhookUndelivered, 3, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &receiver{statuses: tt.statuses, hangups: tt.hangups}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			w, waits := newWebhook(t, srv, approvals.WebhookConfig{MaxAttempts: tt.attempts})
			err := w.Notify(context.Background(), note)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Notify = %v, want %v", err, tt.wantErr)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.attempts != tt.wantTries {
				t.Errorf("%d attempts, want %d", rec.attempts, tt.wantTries)
			}
			if diff := cmp.Diff(tt.wantWaits, *waits); diff != "" {
				t.Errorf("backoff calls (-want +got):\n%s", diff)
			}
			if len(rec.errs) > 0 {
				t.Errorf("signature failures at the receiver: %v", rec.errs)
			}
			if tt.wantErr == nil {
				var got map[string]any
				if err := json.Unmarshal(rec.verified[len(rec.verified)-1], &got); err != nil {
					t.Fatal(err)
				}
				want := map[string]any{
					"id": "req-1", "binding_message": "Refund $120 to ACME?", "user": "user-7", "agent": "agent-3",
					"tenant": "tenant-a", "resource": "mcp://payments", "tool": "refund", "arguments_sha256": digestA,
					"approvers": []any{"group:finance"}, "expires_at": "2026-03-01T12:10:00Z",
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("delivered body (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestWebhookStopsWhenContextEnds(t *testing.T) {
	rec := &receiver{statuses: []int{503}, hit: make(chan struct{}, 1)}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, _ := newWebhook(t, srv, approvals.WebhookConfig{Backoff: func(int) time.Duration { return time.Hour }})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-rec.hit
		cancel()
	}()
	err := w.Notify(ctx, note)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, approvals.ErrWebhookUndelivered) {
		t.Fatalf("Notify = %v, want cancelled and undelivered", err)
	}
}

func TestStoreNotifiesThroughWebhook(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, _ := newWebhook(t, srv, approvals.WebhookConfig{})
	f := newFixture(t, approvals.Options{Notifier: w})
	res := f.gate(t, refund(), once)
	if ev := f.events.Await(approvals.EventNotified); ev.ID != res.ID {
		t.Errorf("notified %s, want %s", ev.ID, res.ID)
	}
	f.s.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got approvals.Notification
	if len(rec.verified) != 1 || json.Unmarshal(rec.verified[0], &got) != nil {
		t.Fatalf("verified deliveries %q, errors %v", rec.verified, rec.errs)
	}
	if got.ID != res.ID || got.Agent != "agent-3" || !got.ExpiresAt.Equal(f.clock.Now().Add(10*time.Minute)) {
		t.Errorf("notification %+v", got)
	}
	if kinds := f.events.Kinds(res.ID); !cmp.Equal(kinds, []approvals.EventKind{approvals.EventOpened, approvals.EventNotified}) {
		t.Errorf("events %v", kinds)
	}
}

func TestNewWebhookRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]approvals.WebhookConfig{
		"no URL":         {Secret: testSecret},
		"relative URL":   {URL: "/hook", Secret: testSecret},
		"other scheme":   {URL: "ftp://example.com/hook", Secret: testSecret},
		"short secret":   {URL: "https://example.com/hook", Secret: approvals.Secret("short")},
		"negative tries": {URL: "https://example.com/hook", Secret: testSecret, MaxAttempts: -1},
	} {
		if _, err := approvals.NewWebhook(cfg); !errors.Is(err, approvals.ErrWebhookConfig) {
			t.Errorf("%s: %v, want ErrWebhookConfig", name, err)
		}
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := approvals.WebhookConfig{URL: "https://example.com/hook", Secret: testSecret}
	log.Info("webhook", "secret", cfg.Secret, "config", cfg)
	out := buf.String() + fmt.Sprintf("%v %+v %s", cfg.Secret, cfg, cfg.Secret)
	if strings.Contains(out, string(testSecret)) || !strings.Contains(out, "REDACTED") {
		t.Errorf("secret leaked: %s", out)
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := approvals.DefaultBackoff(i + 1); got != w {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := approvals.DefaultBackoff(1000); got != 30*time.Second {
		t.Errorf("DefaultBackoff(1000) = %v", got)
	}
}
