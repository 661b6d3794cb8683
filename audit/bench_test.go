package audit_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/writ-dev/writ/audit"
)

// BenchmarkAppend measures the enqueue cost on the Check path: many
// goroutines appending while the writer drains the queue. Batches are
// discarded, so the database is not what is measured; an Append that finds
// the queue full yields and tries again, so that time is counted.
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
		n := 0
		for pb.Next() {
			// A Check handler waits on the network between decisions; here
			// the appenders yield now and then so the writer gets a turn.
			if n++; n%64 == 0 {
				runtime.Gosched()
			}
			for {
				err := l.Append(rec)
				if err == nil {
					break
				}
				if !errors.Is(err, audit.ErrBacklog) {
					b.Errorf("Append: %v", err)
					return
				}
				// The writer is behind: let it run, as a loaded Check
				// path would.
				runtime.Gosched()
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
// one-transaction-per-record baseline for the ratio. cpu-ns/record is the
// process's CPU time (every goroutine, GC included) per record written, which
// is what the writer takes from the Check path; it varies less than ns/op
// when other processes compete for the CPU.
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
			start, startCPU := time.Now(), processCPU()
			go func() { done <- l.Run(ctx) }()
			for _, r := range recs {
				if err := l.Append(r); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			if err := l.Close(ctx); err != nil {
				b.Fatalf("Close: %v", err)
			}
			elapsed, cpu := time.Since(start), processCPU()-startCPU
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
			}
		})
	}
}
