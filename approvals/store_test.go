package approvals_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/store"
)

func TestGateOpensPendingRequest(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	if res.Status != approvals.Pending {
		t.Fatalf("status %s, want pending", res.Status)
	}
	if res.ExpiresIn != 10*time.Minute || res.Interval != approvals.DefaultInterval || res.BindingMessage != once.BindingMessage {
		t.Errorf("result %+v", res)
	}
	r, err := f.s.Get(context.Background(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := refund()
	if diff := cmp.Diff(want, r.Call); diff != "" {
		t.Errorf("stored call (-want +got):\n%s", diff)
	}
	if r.Status != approvals.Pending || r.Fingerprint != approvals.Fingerprint(want) || !slices.Equal(r.Approvers, once.Approvers) ||
		r.Uses != 1 || r.UsesLeft != 1 || !r.ExpiresAt.Equal(f.clock.Now().Add(10*time.Minute)) {
		t.Errorf("stored request %+v", r)
	}
	opened := f.events.Of(approvals.EventOpened)
	if len(opened) != 1 || opened[0].ID != res.ID || opened[0].DecisionID != "dec-1" || opened[0].Call.User != "user-7" {
		t.Errorf("opened events %+v", opened)
	}
}

func TestIdenticalPendingCallsShareOneRequest(t *testing.T) {
	n := &countingNotifier{}
	f := newFixture(t, approvals.Options{Notifier: n})
	first := f.gate(t, refund(), once)

	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	for i := range ids {
		wg.Go(func() {
			c := refund()
			c.DecisionID = "dec-retry"
			res, err := f.s.Gate(context.Background(), c, once)
			ids[i], errs[i] = res.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != first.ID {
			t.Errorf("retry %d: id %q err %v, want the first request %q", i, ids[i], errs[i], first.ID)
		}
	}
	f.close() // waits for notifications
	if got := len(f.events.Of(approvals.EventOpened)); got != 1 {
		t.Errorf("%d requests opened, want 1", got)
	}
	if got := n.count(); got != 1 {
		t.Errorf("%d notifications, want 1", got)
	}

	// A different call does not share it.
	other := refund()
	other.User = "user-8"
	f.open(t, approvals.Options{})
	if res := f.gate(t, other, once); res.ID == first.ID || res.Status != approvals.Pending {
		t.Errorf("another user's call got %+v", res)
	}
}

func TestApprovalPassesOnceThenPendingAgain(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	f.approve(t, res.ID)

	c := refund()
	c.DecisionID = "dec-2"
	passed := f.gate(t, c, once)
	if passed.Status != approvals.Approved || passed.ID != res.ID || passed.Approver != "user:alice" || passed.UsesLeft != 0 {
		t.Fatalf("retry after approval: %+v", passed)
	}
	c.DecisionID = "dec-3"
	again := f.gate(t, c, once)
	if again.Status != approvals.Pending || again.ID == res.ID {
		t.Fatalf("second retry: %+v, want a new pending request", again)
	}

	r, err := f.s.Get(context.Background(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approvals.Consumed || !slices.Equal(r.ConsumedBy, []string{"dec-2"}) {
		t.Errorf("consumed request: status %s, used by %v", r.Status, r.ConsumedBy)
	}
	want := []approvals.EventKind{approvals.EventOpened, approvals.EventApproved, approvals.EventConsumed}
	if diff := cmp.Diff(want, f.events.Kinds(res.ID)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	consumed := f.events.Of(approvals.EventConsumed)
	approved := f.events.Of(approvals.EventApproved)
	if consumed[0].DecisionID != "dec-2" || approved[0].Approver != "user:alice" {
		t.Errorf("consumed %+v approved %+v", consumed[0], approved[0])
	}
}

func TestTamperedArgumentsNeverPass(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	a := refund()
	resA := f.gate(t, a, once)
	f.approve(t, resA.ID)

	b := refund()
	b.ArgumentsSHA256 = digestB
	for i := range 3 {
		res := f.gate(t, b, once)
		if res.Status != approvals.Pending || res.ID == resA.ID {
			t.Fatalf("call %d with arguments B: %+v, want pending on a new request", i, res)
		}
	}
	// A's approval is untouched by B's attempts.
	if res := f.gate(t, a, once); res.Status != approvals.Approved || res.ID != resA.ID {
		t.Fatalf("call with arguments A: %+v", res)
	}
}

func TestUsesAndWindow(t *testing.T) {
	tests := []struct {
		name    string
		req     approvals.Requirement
		advance time.Duration // before each retry
		want    []approvals.Status
	}{
		{"three uses", approvals.Requirement{Uses: 3},
			0, []approvals.Status{approvals.Approved, approvals.Approved, approvals.Approved, approvals.Pending}},
		{"window, unlimited uses", approvals.Requirement{Uses: approvals.UnlimitedUses, Window: 5 * time.Minute},
			time.Minute, []approvals.Status{approvals.Approved, approvals.Approved, approvals.Approved, approvals.Approved, approvals.Expired, approvals.Pending}},
		{"window with two uses", approvals.Requirement{Uses: 2, Window: 5 * time.Minute},
			time.Minute, []approvals.Status{approvals.Approved, approvals.Approved, approvals.Pending}},
		{"window outlives TTL", approvals.Requirement{TTL: time.Minute, Uses: approvals.UnlimitedUses, Window: 3 * time.Minute},
			50 * time.Second, []approvals.Status{approvals.Approved, approvals.Approved, approvals.Approved, approvals.Expired, approvals.Pending}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, approvals.Options{})
			res := f.gate(t, refund(), tt.req)
			f.approve(t, res.ID)
			var got []approvals.Status
			for range tt.want {
				f.clock.Advance(tt.advance)
				got = append(got, f.gate(t, refund(), tt.req).Status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConcurrentRetriesAfterApprovalExactlyOnePasses(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	f.approve(t, res.ID)

	const n = 50
	results := make([]approvals.Result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			c := refund()
			c.DecisionID = "dec-concurrent"
			results[i], errs[i] = f.s.Gate(context.Background(), c, once)
		})
	}
	close(start)
	wg.Wait()

	approved, pendingIDs := 0, map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Gate %d: %v", i, errs[i])
		}
		switch results[i].Status {
		case approvals.Approved:
			approved++
			if results[i].ID != res.ID {
				t.Errorf("passed on %s, want %s", results[i].ID, res.ID)
			}
		case approvals.Pending:
			pendingIDs[results[i].ID] = true
		default:
			t.Errorf("Gate %d: %s", i, results[i].Status)
		}
	}
	if approved != 1 {
		t.Fatalf("%d of %d concurrent retries passed, want exactly 1", approved, n)
	}
	if len(pendingIDs) != 1 || pendingIDs[res.ID] {
		t.Errorf("the other retries waited on %v, want one new request", pendingIDs)
	}
	if got := len(f.events.Of(approvals.EventConsumed)); got != 1 {
		t.Errorf("%d consumed events, want 1", got)
	}
	r, err := f.s.Get(context.Background(), res.ID)
	if err != nil || len(r.ConsumedBy) != 1 {
		t.Errorf("uses recorded %v, %v", r.ConsumedBy, err)
	}
}

func TestDenial(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	f.clock.Advance(9 * time.Minute)
	if err := f.s.Deny(context.Background(), res.ID, "user:bob"); err != nil {
		t.Fatal(err)
	}
	// The denial stands for one TTL from the moment it was given, even past
	// the request's original expiry.
	for _, step := range []time.Duration{0, 5 * time.Minute, 4*time.Minute + 59*time.Second} {
		f.clock.Advance(step)
		got := f.gate(t, refund(), once)
		if got.Status != approvals.Denied || got.ID != res.ID || got.Approver != "user:bob" {
			t.Fatalf("after +%v: %+v, want denied by user:bob", step, got)
		}
	}
	if err := f.s.Approve(context.Background(), res.ID, "user:alice"); !errors.Is(err, approvals.ErrNotPending) {
		t.Errorf("approve after deny: %v, want ErrNotPending", err)
	}
	f.clock.Advance(time.Second)
	next := f.gate(t, refund(), once)
	if next.Status != approvals.Pending || next.ID == res.ID {
		t.Fatalf("after the denial ran out: %+v, want a new pending request", next)
	}
	denied := f.events.Of(approvals.EventDenied)
	if len(denied) != 1 || denied[0].Approver != "user:bob" {
		t.Errorf("denied events %+v", denied)
	}
}

func TestExpiry(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		f := newFixture(t, approvals.Options{})
		res := f.gate(t, refund(), once)
		f.clock.Advance(10*time.Minute - time.Millisecond)
		if got := f.gate(t, refund(), once); got.Status != approvals.Pending || got.ID != res.ID || got.ExpiresIn != time.Millisecond {
			t.Fatalf("just before expiry: %+v", got)
		}
		f.clock.Advance(time.Millisecond)
		if err := f.s.Approve(context.Background(), res.ID, "user:alice"); !errors.Is(err, approvals.ErrNotPending) {
			t.Fatalf("approve at expiry: %v, want ErrNotPending", err)
		}
		if got := f.gate(t, refund(), once); got.Status != approvals.Expired || got.ID != res.ID {
			t.Fatalf("at expiry: %+v, want expired once", got)
		}
		next := f.gate(t, refund(), once)
		if next.Status != approvals.Pending || next.ID == res.ID {
			t.Fatalf("after expiry was told: %+v, want a new request", next)
		}
		if got := f.events.Kinds(res.ID); !slices.Equal(got, []approvals.EventKind{approvals.EventOpened, approvals.EventExpired}) {
			t.Errorf("events %v", got)
		}
	})
	t.Run("approved but unused", func(t *testing.T) {
		f := newFixture(t, approvals.Options{})
		res := f.gate(t, refund(), once)
		f.approve(t, res.ID)
		f.clock.Advance(10 * time.Minute)
		if got := f.gate(t, refund(), once); got.Status != approvals.Expired || got.ID != res.ID {
			t.Fatalf("%+v, want expired", got)
		}
		if got := f.gate(t, refund(), once); got.Status != approvals.Pending || got.ID == res.ID {
			t.Fatalf("%+v, want a new pending request", got)
		}
	})
	t.Run("swept", func(t *testing.T) {
		f := newFixture(t, approvals.Options{})
		res := f.gate(t, refund(), once)
		other := refund()
		other.Action = "charge"
		f.gate(t, other, approvals.Requirement{TTL: time.Hour})
		f.clock.Advance(10 * time.Minute)
		listed, err := f.s.List(context.Background(), approvals.Filter{Status: approvals.Expired})
		if err != nil || len(listed) != 1 || listed[0].ID != res.ID {
			t.Fatalf("expired before sweep: %v, %v", listed, err)
		}
		n, err := f.s.Sweep(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("Sweep = %d, %v; want 1", n, err)
		}
		if got := f.events.Of(approvals.EventExpired); len(got) != 1 || got[0].ID != res.ID {
			t.Errorf("expired events %+v", got)
		}
		// A swept request is still told as expired once.
		if got := f.gate(t, refund(), once); got.Status != approvals.Expired || got.ID != res.ID {
			t.Fatalf("after sweep: %+v, want expired", got)
		}
		if n, _ := f.s.Sweep(context.Background()); n != 0 {
			t.Errorf("second sweep marked %d", n)
		}
	})
}

func TestDecideErrors(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	ctx := context.Background()
	res := f.gate(t, refund(), once)

	for _, decide := range []func(context.Context, string, string) error{f.s.Approve, f.s.Deny} {
		if err := decide(ctx, res.ID, "agent-3"); !errors.Is(err, approvals.ErrSelfApproval) {
			t.Errorf("agent deciding its own request: %v, want ErrSelfApproval", err)
		}
		if err := decide(ctx, res.ID, ""); !errors.Is(err, approvals.ErrApproverRequired) {
			t.Errorf("no approver: %v", err)
		}
		if err := decide(ctx, "no-such-id", "user:alice"); !errors.Is(err, approvals.ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	}
	if got := f.gate(t, refund(), once); got.Status != approvals.Pending || got.ID != res.ID {
		t.Fatalf("after refused self-approval: %+v, want still pending", got)
	}
	f.approve(t, res.ID)
	if err := f.s.Approve(ctx, res.ID, "user:carol"); !errors.Is(err, approvals.ErrNotPending) {
		t.Errorf("approve twice: %v", err)
	}
	if err := f.s.Deny(ctx, res.ID, "user:carol"); !errors.Is(err, approvals.ErrNotPending) {
		t.Errorf("deny after approve: %v", err)
	}
	if got := f.events.Of(approvals.EventApproved); len(got) != 1 || got[0].Approver != "user:alice" {
		t.Errorf("approved events %+v", got)
	}
	if _, err := f.s.Get(ctx, "no-such-id"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestGateRejectsBadInput(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	tests := []struct {
		name string
		call approvals.Call
		req  approvals.Requirement
		want error
	}{
		{"no user or agent", approvals.Call{Action: "refund"}, once, approvals.ErrInvalidCall},
		{"short digest", approvals.Call{User: "u", ArgumentsSHA256: "abc"}, once, approvals.ErrInvalidCall},
		{"uppercase digest", approvals.Call{User: "u", ArgumentsSHA256: "AB" + digestA[2:]}, once, approvals.ErrInvalidCall},
		{"negative TTL", refund(), approvals.Requirement{TTL: -time.Second}, approvals.ErrInvalidRequirement},
		{"negative uses", refund(), approvals.Requirement{Uses: -2}, approvals.ErrInvalidRequirement},
		{"unlimited without window", refund(), approvals.Requirement{Uses: approvals.UnlimitedUses}, approvals.ErrInvalidRequirement},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.s.Gate(context.Background(), tt.call, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if got := f.events.Of(approvals.EventOpened); len(got) != 0 {
		t.Errorf("bad input opened %d requests", len(got))
	}
}

func TestRestartBetweenApprovalAndRetry(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	res := f.gate(t, refund(), once)
	f.approve(t, res.ID)
	f.close()

	f.open(t, approvals.Options{})
	got := f.gate(t, refund(), once)
	if got.Status != approvals.Approved || got.ID != res.ID || got.Approver != "user:alice" {
		t.Fatalf("after restart: %+v, want approved", got)
	}
	f.close()
	f.open(t, approvals.Options{})
	if got := f.gate(t, refund(), once); got.Status != approvals.Pending || got.ID == res.ID {
		t.Fatalf("after a second restart: %+v, want a new pending request (the use survived)", got)
	}
}

func TestListFilters(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	ctx := context.Background()
	a := f.gate(t, refund(), once)
	other := refund()
	other.User, other.Tenant = "user-8", "tenant-b"
	b := f.gate(t, other, once)
	f.approve(t, a.ID)

	ids := func(rs []approvals.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		filter approvals.Filter
		want   []string
	}{
		{approvals.Filter{}, []string{b.ID, a.ID}},
		{approvals.Filter{Status: approvals.Pending}, []string{b.ID}},
		{approvals.Filter{Status: approvals.Approved}, []string{a.ID}},
		{approvals.Filter{Tenant: "tenant-b"}, []string{b.ID}},
		{approvals.Filter{User: "user-7", Agent: "agent-3"}, []string{a.ID}},
		{approvals.Filter{Limit: 1}, []string{b.ID}},
		{approvals.Filter{Status: approvals.Denied}, nil},
	}
	for _, tt := range tests {
		got, err := f.s.List(ctx, tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("List(%+v) (-want +got):\n%s", tt.filter, diff)
		}
	}
	if _, err := f.s.List(ctx, approvals.Filter{Status: "bogus"}); err == nil {
		t.Error("unknown status accepted")
	}
}

func TestAuthReqIDEntropy(t *testing.T) {
	f := newFixture(t, approvals.Options{})
	seen := map[string]bool{}
	for i := range 200 {
		c := refund()
		c.User = "user-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		id := f.gate(t, c, once).ID
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil {
			t.Fatalf("id %q is not unpadded base64url: %v", id, err)
		}
		if len(raw)*8 < 128 || len(raw) != 32 || len(id) != 43 {
			t.Fatalf("id %q carries %d bits, want 256", id, len(raw)*8)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

// blockingNotifier holds every Notify until released.
type blockingNotifier struct {
	started  chan approvals.Notification
	release  chan struct{}
	returned chan struct{} // closed when a released Notify returns
}

func newBlockingNotifier() *blockingNotifier {
	return &blockingNotifier{started: make(chan approvals.Notification, 1), release: make(chan struct{}), returned: make(chan struct{})}
}

func (b *blockingNotifier) Notify(ctx context.Context, n approvals.Notification) error {
	b.started <- n
	select {
	case <-b.release:
		close(b.returned)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type countingNotifier struct {
	mu sync.Mutex
	n  int
}

func (c *countingNotifier) Notify(context.Context, approvals.Notification) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return nil
}

func (c *countingNotifier) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestNotificationNeverBlocksGate(t *testing.T) {
	n := newBlockingNotifier()
	f := newFixture(t, approvals.Options{Notifier: n})
	ctx, cancel := context.WithCancel(context.Background())
	res, err := f.s.Gate(ctx, refund(), once)
	cancel() // the caller going away must not cancel the notification
	if err != nil || res.Status != approvals.Pending {
		t.Fatalf("Gate with a stuck notifier: %+v, %v", res, err)
	}
	got := <-n.started
	if got.ID != res.ID || got.Tool != "refund" || got.ArgumentsSHA256 != digestA || got.BindingMessage != once.BindingMessage {
		t.Errorf("notification %+v", got)
	}
	close(n.release)
	<-n.returned
	f.s.Close() // waits for the event to be emitted
	if kinds := f.events.Kinds(res.ID); !slices.Equal(kinds, []approvals.EventKind{approvals.EventOpened, approvals.EventNotified}) {
		t.Errorf("events %v, want opened then notified", kinds)
	}
}

func TestCloseCancelsNotifications(t *testing.T) {
	n := newBlockingNotifier()
	f := newFixture(t, approvals.Options{Notifier: n})
	res := f.gate(t, refund(), once)
	<-n.started
	f.s.Close() // returns only once the notification gave up
	failed := f.events.Of(approvals.EventNotifyFailed)
	if len(failed) != 1 || failed[0].ID != res.ID || failed[0].Err == "" {
		t.Errorf("notify_failed events %+v", failed)
	}
	if _, err := f.s.Gate(context.Background(), refund(), once); !errors.Is(err, approvals.ErrClosed) {
		t.Errorf("Gate after Close: %v", err)
	}
}

func TestOpenNeedsSchema(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TABLE approval_uses`); err != nil {
		t.Fatal(err)
	}
	if _, err := approvals.Open(context.Background(), db, approvals.Options{}); !errors.Is(err, approvals.ErrNoSchema) {
		t.Errorf("Open without schema: %v", err)
	}
}

// Suspending an agent cancels its open requests: pending ones are denied,
// approved ones it has not used are withdrawn, other agents' requests are
// untouched, and the identical call stays denied for one TTL.
func TestCancelAgent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, approvals.Options{})
	pending := f.gate(t, refund(), once)
	approvedCall := refund()
	approvedCall.Action = "refund_partial"
	approved := f.gate(t, approvedCall, once)
	if err := f.s.Approve(ctx, approved.ID, "user:alice"); err != nil {
		t.Fatal(err)
	}
	otherCall := refund()
	otherCall.Agent = "other-agent"
	other := f.gate(t, otherCall, once)

	cancelled, err := f.s.CancelAgent(ctx, refund().Agent, "user:ops")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range cancelled {
		ids = append(ids, r.ID)
		if r.Status != approvals.Denied || r.Approver != "user:ops" {
			t.Errorf("cancelled %s: status %s approver %q", r.ID, r.Status, r.Approver)
		}
	}
	if !slices.Equal(ids, []string{pending.ID, approved.ID}) {
		t.Fatalf("cancelled %v, want %v", ids, []string{pending.ID, approved.ID})
	}
	for _, call := range []approvals.Call{refund(), approvedCall} {
		if got := f.gate(t, call, once); got.Status != approvals.Denied || got.Approver != "user:ops" {
			t.Errorf("%s after cancel: %+v, want denied by user:ops", call.Action, got)
		}
	}
	if got := f.gate(t, otherCall, once); got.Status != approvals.Pending || got.ID != other.ID {
		t.Errorf("another agent's request: %+v, want still pending", got)
	}
	if denied := f.events.Of(approvals.EventDenied); len(denied) != 2 {
		t.Errorf("denied events: %d, want 2", len(denied))
	}
	if again, err := f.s.CancelAgent(ctx, refund().Agent, "user:ops"); err != nil || len(again) != 0 {
		t.Errorf("second cancel: %d requests, %v; want none", len(again), err)
	}
	if _, err := f.s.CancelAgent(ctx, refund().Agent, ""); !errors.Is(err, approvals.ErrApproverRequired) {
		t.Errorf("cancel without a name: %v, want ErrApproverRequired", err)
	}
}
