package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

// base is the time of the first test record.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// record returns the i-th test record.
func record(i int) audit.Record {
	return audit.Record{
		DecisionID: fmt.Sprintf("d-%05d", i),
		Time:       base.Add(time.Duration(i) * time.Millisecond),
		User:       "user-7",
		Agent:      "agent-3",
		Tenant:     "tenant-a",
		Actors:     []string{"agent-3"},
		Request:    audit.Request{Protocol: "grpc", Method: "POST", Host: "tools.internal", Path: "/mcp", MCPMethod: "tools/call", MCPName: "search_issues"},
		Outcome:    "allow",
		Status:     200,
		Reason:     "tool allowed for agent",
	}
}

// checkLeaks fails the test if goroutines outlive it. Call it first, so it
// runs after every other cleanup (the database close included).
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// openDB opens a fresh database, closed when the test ends. It returns the
// data directory too, for reopening.
func openDB(t testing.TB) (*store.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenSQLite(t.Context(), dir)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func openLog(t testing.TB, db *store.DB, opts audit.Options) *audit.Log {
	t.Helper()
	l, err := audit.Open(t.Context(), db, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// startRun runs l's writer until the returned stop is called (or the test
// ends); stop fails the test if Run returned an error.
func startRun(t *testing.T, l *audit.Log) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// batchEvent is one batch write seen by the afterBatch hook.
type batchEvent struct {
	n   int
	err error
}

// watchBatches returns a channel of every batch l writes.
func watchBatches(l *audit.Log) <-chan batchEvent {
	ch := make(chan batchEvent, 1024)
	audit.SetTestHooks(l, func(n int, err error) { ch <- batchEvent{n, err} }, nil)
	return ch
}

// appendAll appends recs and fails the test on the first error.
func appendAll(t *testing.T, l *audit.Log, recs ...audit.Record) {
	t.Helper()
	for _, r := range recs {
		if err := l.Append(r); err != nil {
			t.Fatalf("Append(%s): %v", r.DecisionID, err)
		}
	}
}

func records(from, to int) []audit.Record {
	var recs []audit.Record
	for i := from; i < to; i++ {
		recs = append(recs, record(i))
	}
	return recs
}

// writeRecords writes n records to db through a log and closes it.
func writeRecords(t *testing.T, db *store.DB, from, to int) {
	t.Helper()
	l := openLog(t, db, audit.Options{})
	appendAll(t, l, records(from, to)...)
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func countRows(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM evidence`).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func decisionIDs(recs []audit.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.DecisionID
	}
	return ids
}

// logBuffer collects log output from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}
