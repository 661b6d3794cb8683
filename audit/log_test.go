package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sync/errgroup"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

func TestAppendConcurrent(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{BatchSize: 64, FlushInterval: time.Millisecond})
	stop := startRun(t, l)

	const workers, each = 8, 150
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error {
			for i := range each {
				if err := l.Append(record(w*each + i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stop()

	const n = workers * each
	if got := l.Written(); got != n {
		t.Errorf("Written() = %d, want %d", got, n)
	}
	if got := l.Pending(); got != 0 {
		t.Errorf("Pending() = %d, want 0", got)
	}
	res, err := audit.Verify(t.Context(), db)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if diff := cmp.Diff(audit.VerifyResult{Records: n, OK: true}, res); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
	seqs := make(map[int64]bool)
	for i := range n {
		want := record(i)
		got, st, err := audit.Find(t.Context(), db, want.DecisionID)
		if err != nil {
			t.Fatalf("Find(%s): %v", want.DecisionID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Find(%s) (-want +got):\n%s", want.DecisionID, diff)
		}
		if st.Seq < 1 || st.Seq > n || seqs[st.Seq] {
			t.Fatalf("Find(%s) seq %d: out of range or repeated", want.DecisionID, st.Seq)
		}
		seqs[st.Seq] = true
	}
}

func TestOrderIsAppendOrder(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{BatchSize: 3, FlushInterval: time.Millisecond})
	stop := startRun(t, l)
	// Appended in reverse id order, so an order by id would show.
	var recs []audit.Record
	for i := 9; i >= 0; i-- {
		recs = append(recs, record(i))
	}
	appendAll(t, l, recs...)
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stop()

	tests := []struct {
		n    int
		want []string
	}{
		{n: 0, want: nil},
		{n: 3, want: decisionIDs(recs[7:])},
		{n: 10, want: decisionIDs(recs)},
		{n: 100, want: decisionIDs(recs)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			got, err := audit.Tail(t.Context(), db, tt.n)
			if err != nil {
				t.Fatalf("Tail: %v", err)
			}
			if diff := cmp.Diff(tt.want, decisionIDs(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Tail(%d) (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}

func TestBatchBoundaries(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	// A flush interval no test waits for: only a full batch or Close writes.
	l := openLog(t, db, audit.Options{BatchSize: 4, FlushInterval: time.Hour})
	events := watchBatches(l)
	appendAll(t, l, records(0, 10)...)
	stop := startRun(t, l)

	for i, want := range []int{4, 4} {
		if ev := <-events; ev.n != want || ev.err != nil {
			t.Fatalf("batch %d: %d records, err %v; want %d, nil", i, ev.n, ev.err, want)
		}
	}
	if got := l.Pending(); got != 2 {
		t.Errorf("Pending() = %d before Close, want 2 (a part batch waits for the interval)", got)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ev := <-events; ev.n != 2 || ev.err != nil {
		t.Errorf("Close wrote %d records, err %v; want 2, nil", ev.n, ev.err)
	}
	stop()
	if got := l.Written(); got != 10 {
		t.Errorf("Written() = %d, want 10", got)
	}
}

func TestFlushInterval(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{BatchSize: 256, FlushInterval: time.Millisecond})
	events := watchBatches(l)
	stop := startRun(t, l)

	appendAll(t, l, record(0))
	// The batch never fills: only the timer can write it.
	if ev := <-events; ev.n != 1 || ev.err != nil {
		t.Fatalf("batch: %d records, err %v; want 1, nil", ev.n, ev.err)
	}
	if got := l.Written(); got != 1 {
		t.Errorf("Written() = %d, want 1", got)
	}
	if _, _, err := audit.Find(t.Context(), db, record(0).DecisionID); err != nil {
		t.Errorf("Find: %v", err)
	}
	stop()
	if err := l.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestWriteFailureRecovers(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	ctx := t.Context()
	exec(t, db, `CREATE TRIGGER full BEFORE INSERT ON evidence BEGIN SELECT RAISE(ABORT, 'disk full'); END;`)

	logger, logs := newLogger()
	l := openLog(t, db, audit.Options{
		BatchSize: 5, FlushInterval: time.Hour,
		RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		Logger: logger,
	})
	events := make(chan batchEvent, 1024)
	waits := make(chan time.Duration, 1)
	release := make(chan struct{})
	audit.SetTestHooks(l,
		func(n int, err error) { events <- batchEvent{n, err} },
		func(ctx context.Context, d time.Duration) error {
			waits <- d
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	stop := startRun(t, l)

	appendAll(t, l, records(0, 5)...)
	ev := <-events
	if ev.n != 5 || ev.err == nil || !strings.Contains(ev.err.Error(), "disk full") {
		t.Fatalf("first batch: %d records, err %v; want 5 and disk full", ev.n, ev.err)
	}
	health := l.Healthy()
	if !errors.Is(health, audit.ErrUnavailable) || !strings.Contains(fmt.Sprint(health), "disk full") {
		t.Errorf("Healthy() = %v, want ErrUnavailable wrapping disk full", health)
	}
	rejected := record(99)
	if err := l.Append(rejected); !errors.Is(err, audit.ErrUnavailable) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Append while failing = %v, want ErrUnavailable wrapping disk full", err)
	}
	if got := l.Pending(); got != 5 {
		t.Errorf("Pending() while failing = %d, want 5 (held, not dropped)", got)
	}

	// Capped exponential backoff; every retry fails while the trigger stays.
	wantWaits := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}
	for i, want := range wantWaits {
		if d := <-waits; d != want {
			t.Errorf("retry %d waited %v, want %v", i+1, d, want)
		}
		if i == len(wantWaits)-1 {
			break
		}
		release <- struct{}{}
		if ev := <-events; ev.err == nil {
			t.Fatalf("retry %d succeeded while writes fail", i+1)
		}
	}
	if got := countRows(t, db); got != 0 {
		t.Fatalf("%d rows written while the trigger refuses inserts", got)
	}

	exec(t, db, `DROP TRIGGER full`)
	release <- struct{}{}
	if ev := <-events; ev.n != 5 || ev.err != nil {
		t.Fatalf("retry after recovery: %d records, err %v; want 5, nil", ev.n, ev.err)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after recovery = %v, want nil", err)
	}
	appendAll(t, l, records(5, 8)...)
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stop()

	if got := l.Written(); got != 8 {
		t.Errorf("Written() = %d, want 8", got)
	}
	res, err := audit.Verify(ctx, db)
	if err != nil || !res.OK || res.Records != 8 {
		t.Errorf("Verify = %+v, %v; want 8 records OK", res, err)
	}
	tail, err := audit.Tail(ctx, db, 100)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	if diff := cmp.Diff(decisionIDs(records(0, 8)), decisionIDs(tail)); diff != "" {
		t.Errorf("log order (-want +got):\n%s", diff)
	}
	if _, _, err := audit.Find(ctx, db, rejected.DecisionID); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Find(rejected record) = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"evidence not written", "disk full", "evidence log writable again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestDuplicateDecision(t *testing.T) {
	tests := []struct {
		name    string
		already int // records written before
		append  []audit.Record
	}{
		{name: "within one batch", append: []audit.Record{record(1), record(1)}},
		{name: "already in the log", already: 2, append: []audit.Record{record(2), record(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			db, _ := openDB(t)
			writeRecords(t, db, 0, tt.already)
			logger, logs := newLogger()
			l := openLog(t, db, audit.Options{BatchSize: 2, FlushInterval: time.Hour, Logger: logger})
			events := watchBatches(l)
			audit.SetTestHooks(l, nil, func(ctx context.Context, _ time.Duration) error {
				<-ctx.Done()
				return ctx.Err()
			})
			stop := startRun(t, l)
			appendAll(t, l, tt.append...)

			ev := <-events
			if !errors.Is(ev.err, audit.ErrDuplicateDecision) || !strings.Contains(ev.err.Error(), `"d-00001"`) {
				t.Fatalf("batch err = %v, want ErrDuplicateDecision naming d-00001", ev.err)
			}
			health := l.Healthy()
			if !errors.Is(health, audit.ErrUnavailable) || !errors.Is(health, audit.ErrDuplicateDecision) {
				t.Errorf("Healthy() = %v, want ErrUnavailable and ErrDuplicateDecision", health)
			}
			if err := l.Append(record(9)); !errors.Is(err, audit.ErrUnavailable) {
				t.Errorf("Append = %v, want ErrUnavailable", err)
			}
			stop()
			if !strings.Contains(logs.String(), "appended twice") || !strings.Contains(logs.String(), "d-00001") {
				t.Errorf("log does not name the duplicate:\n%s", logs.String())
			}

			// Nothing is skipped: the batch stays queued and Close says so.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := l.Close(ctx)
			if !errors.Is(err, context.Canceled) || !errors.Is(err, audit.ErrDuplicateDecision) ||
				!strings.Contains(err.Error(), "2 evidence records not written") {
				t.Errorf("Close = %v, want 2 records not written, canceled, duplicate", err)
			}
			if got := countRows(t, db); got != tt.already {
				t.Errorf("%d rows, want %d (the failed batch rolled back)", got, tt.already)
			}
		})
	}
}

func TestShutdownWritesEverything(t *testing.T) {
	for _, run := range []bool{true, false} {
		t.Run(fmt.Sprintf("run=%v", run), func(t *testing.T) {
			checkLeaks(t)
			db, dir := openDB(t)
			l := openLog(t, db, audit.Options{})
			stop := func() {}
			if run {
				stop = startRun(t, l)
			}
			const workers, each = 4, 600
			var g errgroup.Group
			for w := range workers {
				g.Go(func() error {
					for i := range each {
						if err := l.Append(record(w*each + i)); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if err := l.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			stop()
			if err := l.Append(record(-1)); !errors.Is(err, audit.ErrClosed) {
				t.Errorf("Append after Close = %v, want ErrClosed", err)
			}
			db.Close()

			reopened, err := store.OpenSQLite(t.Context(), dir)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer reopened.Close()
			if got := countRows(t, reopened); got != workers*each {
				t.Errorf("%d records durable, want %d", got, workers*each)
			}
			res, err := audit.Verify(t.Context(), reopened)
			if err != nil || !res.OK {
				t.Errorf("Verify = %+v, %v", res, err)
			}
		})
	}
}

func TestReopenContinuesChain(t *testing.T) {
	db, dir := openDB(t)
	writeRecords(t, db, 0, 3)
	db.Close()

	db2, err := store.OpenSQLite(t.Context(), dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db2.Close()
	writeRecords(t, db2, 3, 5)

	res, err := audit.Verify(t.Context(), db2)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if diff := cmp.Diff(audit.VerifyResult{Records: 5, OK: true}, res); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
	_, first, _ := audit.Find(t.Context(), db2, record(0).DecisionID)
	_, last, _ := audit.Find(t.Context(), db2, record(2).DecisionID)
	_, next, err := audit.Find(t.Context(), db2, record(3).DecisionID)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if first.PrevHash != strings.Repeat("0", 64) || first.Seq != 1 {
		t.Errorf("first record = %+v, want seq 1 and 64 zeros", first)
	}
	if next.Seq != 4 || next.PrevHash != last.Hash {
		t.Errorf("record after reopen = %+v, want seq 4 linked to %s", next, last.Hash)
	}
}

func TestAnotherWriterAppended(t *testing.T) {
	db, _ := openDB(t)
	// stale reads the head while the log is empty; another log then appends.
	logger, logs := newLogger()
	stale := openLog(t, db, audit.Options{Logger: logger})
	events := watchBatches(stale)
	audit.SetTestHooks(stale, nil, func(context.Context, time.Duration) error { return nil })
	writeRecords(t, db, 0, 2)

	appendAll(t, stale, records(2, 4)...)
	if err := stale.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ev := <-events; ev.err == nil {
		t.Errorf("first write from a stale head succeeded")
	}
	if ev := <-events; ev.err != nil || ev.n != 2 {
		t.Errorf("retry: %d records, err %v; want 2, nil", ev.n, ev.err)
	}
	res, err := audit.Verify(t.Context(), db)
	if err != nil || !res.OK || res.Records != 4 {
		t.Errorf("Verify = %+v, %v; want 4 records OK", res, err)
	}
	if !strings.Contains(logs.String(), "chain head moved") {
		t.Errorf("log does not report the moved head:\n%s", logs.String())
	}
}

func TestMaxPending(t *testing.T) {
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{MaxPending: 3})
	appendAll(t, l, records(0, 3)...)
	if err := l.Append(record(3)); !errors.Is(err, audit.ErrBacklog) {
		t.Errorf("Append past MaxPending = %v, want ErrBacklog", err)
	}
	if err := l.Healthy(); !errors.Is(err, audit.ErrBacklog) {
		t.Errorf("Healthy() = %v, want ErrBacklog", err)
	}
	if got := l.Pending(); got != 3 {
		t.Errorf("Pending() = %d, want 3", got)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := l.Written(); got != 3 {
		t.Errorf("Written() = %d, want 3", got)
	}
	if err := l.Healthy(); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Healthy() after Close = %v, want ErrClosed", err)
	}
	if err := l.Append(record(4)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestAppendInvalid(t *testing.T) {
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{})
	tests := []struct {
		name   string
		mutate func(*audit.Record)
	}{
		{"no decision id", func(r *audit.Record) { r.DecisionID = "" }},
		{"time past year 9999", func(r *audit.Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"approval before year 0", func(r *audit.Record) {
			r.Approval = &audit.Approval{ID: "a", Decided: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
		}},
		{"token zone offset", func(r *audit.Record) {
			r.Token = &audit.Token{ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 25*3600))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(0)
			tt.mutate(&r)
			if err := l.Append(r); !errors.Is(err, audit.ErrInvalidRecord) {
				t.Errorf("Append = %v, want ErrInvalidRecord", err)
			}
		})
	}
	if got := l.Pending(); got != 0 {
		t.Errorf("Pending() = %d, want 0", got)
	}
}

func TestAppendStampsTime(t *testing.T) {
	db, _ := openDB(t)
	now := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	l := openLog(t, db, audit.Options{Now: func() time.Time { return now }})
	stamped, kept := record(0), record(1)
	stamped.Time = time.Time{}
	appendAll(t, l, stamped, kept)
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, tt := range []struct {
		id   string
		want time.Time
	}{{stamped.DecisionID, now}, {kept.DecisionID, kept.Time}} {
		got, _, err := audit.Find(t.Context(), db, tt.id)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if !got.Time.Equal(tt.want) {
			t.Errorf("%s: Time = %v, want %v", tt.id, got.Time, tt.want)
		}
	}
}

func TestRunTwice(t *testing.T) {
	checkLeaks(t)
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{FlushInterval: time.Millisecond})
	events := watchBatches(l)
	stop := startRun(t, l)
	appendAll(t, l, record(0))
	<-events // the first Run is writing
	if err := l.Run(t.Context()); !errors.Is(err, audit.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	stop()
	if err := l.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOpenInvalidOptions(t *testing.T) {
	db, _ := openDB(t)
	for _, opts := range []audit.Options{{BatchSize: -1}, {FlushInterval: -time.Second}, {MaxPending: -1}, {RetryMax: -1}} {
		if _, err := audit.Open(t.Context(), db, opts); !errors.Is(err, audit.ErrInvalidOptions) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidOptions", opts, err)
		}
	}
}

func TestFindNotFound(t *testing.T) {
	db, _ := openDB(t)
	writeRecords(t, db, 0, 1)
	if _, _, err := audit.Find(t.Context(), db, "nope"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Find = %v, want ErrNotFound", err)
	}
}

func exec(t *testing.T, db *store.DB, query string) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
