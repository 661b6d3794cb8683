package audit

import (
	"context"
	"time"
)

// SetTestHooks installs hooks before Run or Close start: afterBatch sees the
// size and result of every batch write, retryWait replaces the backoff wait.
// A nil hook leaves the default.
func SetTestHooks(l *Log, afterBatch func(n int, err error), retryWait func(ctx context.Context, d time.Duration) error) {
	if afterBatch != nil {
		l.afterBatch = afterBatch
	}
	if retryWait != nil {
		l.retryWait = retryWait
	}
}

// DiscardWrites makes batches succeed without touching the database, to
// measure the queue alone.
func DiscardWrites(l *Log) { l.discard = true }
