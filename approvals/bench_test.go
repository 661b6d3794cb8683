package approvals_test

import (
	"context"
	"testing"

	"github.com/writ-dev/writ/approvals"
)

func BenchmarkFingerprint(b *testing.B) {
	c := refund()
	b.ReportAllocs()
	for b.Loop() {
		approvals.Fingerprint(c)
	}
}

// BenchmarkGatePending measures an agent's retry while its request waits.
func BenchmarkGatePending(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	if _, err := f.Gate(ctx, refund(), once); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, err := f.Gate(ctx, refund(), once); err != nil || res.Status != approvals.Pending {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkGateApproved measures the call that takes a use of an approval
// (a window approval with unlimited uses, so every iteration passes).
func BenchmarkGateApproved(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	req := approvals.Requirement{Uses: approvals.UnlimitedUses, Window: 1 << 62}
	res, err := f.Gate(ctx, refund(), req)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Approve(ctx, res.ID, "user:alice"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, err := f.Gate(ctx, refund(), req); err != nil || res.Status != approvals.Approved {
			b.Fatal(res, err)
		}
	}
}

func newBenchFixture(b *testing.B) *approvals.Store {
	b.Helper()
	f := &fixture{dir: b.TempDir(), clock: newClock(), events: &events{ch: make(chan approvals.Event)}}
	f.openTB(b, approvals.Options{})
	return f.s
}
