package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/writ-dev/writ/audit"
)

// BenchmarkAppend measures the enqueue cost on the Check path: many
// goroutines appending while the writer drains the queue (batches are
// discarded, so the database is not what is measured).
func BenchmarkAppend(b *testing.B) {
	db, _ := openDB(b)
	l := openLog(b, db, audit.Options{})
	audit.DiscardWrites(l)
	ctx := b.Context()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	rec := record(0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(rec); err != nil {
				b.Errorf("Append: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	if err := l.Close(ctx); err != nil {
		b.Fatalf("Close: %v", err)
	}
}

// BenchmarkWrite measures records durably written per second: b.N records
// appended, then Close returns once all are committed. Batch size 1 is the
// one-transaction-per-record baseline for the ratio.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db, _ := openDB(b)
			l := openLog(b, db, audit.Options{BatchSize: size, MaxPending: b.N + 1})
			recs := make([]audit.Record, b.N)
			for i := range recs {
				recs[i] = record(i)
			}
			ctx := b.Context()
			done := make(chan error, 1)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			go func() { done <- l.Run(ctx) }()
			for _, r := range recs {
				if err := l.Append(r); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			if err := l.Close(ctx); err != nil {
				b.Fatalf("Close: %v", err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}
