package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/store"
)

// Options tune the evidence log. Zero values take the defaults.
type Options struct {
	// BatchSize is the most records written in one transaction.
	// Default 256.
	BatchSize int
	// FlushInterval is the longest a record waits for its batch to fill
	// before the batch is written. Default 20ms.
	FlushInterval time.Duration
	// MaxPending is how many records may wait in memory; beyond it Append
	// returns ErrBacklog. Default 100000.
	MaxPending int
	// RetryMin is the wait before the first retry of a failed write; each
	// further failure doubles it up to RetryMax. Defaults 50ms and 5s.
	RetryMin time.Duration
	RetryMax time.Duration
	// Logger receives write failures and recoveries. Default slog.Default().
	Logger *slog.Logger
	// Now stamps records appended without a Time. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.BatchSize < 0 || o.FlushInterval < 0 || o.MaxPending < 0 || o.RetryMin < 0 || o.RetryMax < 0 {
		return o, fmt.Errorf("%w: sizes and durations must not be negative", ErrInvalidOptions)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 256
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 20 * time.Millisecond
	}
	if o.MaxPending == 0 {
		o.MaxPending = 100000
	}
	if o.RetryMin == 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Log is the evidence log. Append is safe for many goroutines; one writer at
// a time (Run, or Close) owns the chain head and writes batches in order.
type Log struct {
	db   *store.DB
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	batches []*batch // oldest first; the last one takes new records
	free    []*batch // emptied batches kept for reuse
	count   int      // records in batches
	closed  bool

	pending   atomic.Int64
	isClosed  atomic.Bool
	failure   atomic.Pointer[error] // ErrUnavailable wrapping the last write error; nil when healthy
	written   atomic.Uint64
	running   atomic.Bool
	wake      chan struct{} // tells Run that a batch started or filled
	writerTok chan struct{} // held by whoever writes a batch

	// Owned by the holder of writerTok.
	seq     int64     // seq of the last record written
	head    chainHash // hash of the last record written
	recheck bool      // a write failed: read the head from the database before the next
	ending  chainPos
	inserts inserts  // prepared INSERTs, reused by every batch
	chain   *chainer // SHA-256 state reused for every link
	buf     []byte   // a chunk's links and records, reused
	ends    []int    // where each record's hash ends in buf
	args    []any    // a chunk's INSERT arguments, reused

	// Test hooks, set before Run or Close.
	afterBatch func(n int, err error)
	retryWait  func(ctx context.Context, d time.Duration) error
	discard    bool
}

// batch is up to BatchSize queued records. Append fills the last batch until
// it is full or sealed; a writer seals the first batch before reading it, and
// from then on only the writer touches it.
type batch struct {
	recs    []Record
	started time.Time // when the first record was queued
	sealed  bool
}

// maxFree is how many emptied batches are kept for reuse.
const maxFree = 8

type chainPos struct {
	seq  int64
	hash chainHash
}

// Open returns a Log appending to db's evidence table, continuing the chain
// from the last record already there.
func Open(ctx context.Context, db *store.DB, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	seq, head, err := readHead(ctx, db)
	if err != nil {
		return nil, err
	}
	return &Log{
		db:        db,
		opts:      opts,
		log:       opts.Logger,
		seq:       seq,
		head:      head,
		chain:     newChainer(),
		args:      make([]any, 0, 1+rowArgs*maxRows),
		wake:      make(chan struct{}, 1),
		writerTok: make(chan struct{}, 1),
		retryWait: waitFor,
	}, nil
}

// Append queues rec to be written. It never waits on I/O. It sets rec.Time to
// Options.Now() when zero and changes nothing else; rec's slices and pointers
// must not be modified after Append. It returns ErrClosed after Close,
// ErrUnavailable while writes are failing, ErrBacklog when MaxPending records
// are waiting, and ErrInvalidRecord for a record that cannot be encoded.
func (l *Log) Append(rec Record) error {
	if err := validate(&rec); err != nil {
		return err
	}
	if rec.Time.IsZero() {
		rec.Time = l.opts.Now()
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if f := l.failure.Load(); f != nil {
		l.mu.Unlock()
		return *f
	}
	if l.count >= l.opts.MaxPending {
		l.mu.Unlock()
		return ErrBacklog
	}
	var tail *batch
	if n := len(l.batches); n > 0 {
		tail = l.batches[n-1]
	}
	if tail == nil || tail.sealed || len(tail.recs) >= l.opts.BatchSize {
		tail = l.newBatch()
		l.batches = append(l.batches, tail)
	}
	if len(tail.recs) == 0 {
		tail.started = time.Now()
	}
	tail.recs = append(tail.recs, rec)
	l.count++
	l.pending.Store(int64(l.count))
	signal := l.count == 1 || len(tail.recs) == l.opts.BatchSize
	l.mu.Unlock()
	if signal {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// newBatch returns an empty batch. l.mu is held.
func (l *Log) newBatch() *batch {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return &batch{recs: make([]Record, 0, min(l.opts.BatchSize, 1024))}
}

// Healthy returns nil when new records can be written, or why not:
// ErrClosed, ErrUnavailable wrapping the last write error, or ErrBacklog.
func (l *Log) Healthy() error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	if f := l.failure.Load(); f != nil {
		return *f
	}
	if l.pending.Load() >= int64(l.opts.MaxPending) {
		return ErrBacklog
	}
	return nil
}

// Pending returns how many records wait to be written.
func (l *Log) Pending() int { return int(l.pending.Load()) }

// Written returns how many records were durably written since Open.
func (l *Log) Written() uint64 { return l.written.Load() }

// Run writes queued records until ctx ends: a batch as soon as it holds
// BatchSize records, or when its oldest record has waited FlushInterval.
// Failed writes are retried with capped exponential backoff. Run returns nil
// when ctx ends, without writing more; Close writes what is left.
func (l *Log) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer l.running.Store(false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	attempt := 0
	for {
		ready, wait := l.next(time.Now())
		switch {
		case ready:
			if _, err := l.flush(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				attempt++
				if l.retryWait(ctx, l.backoff(attempt)) != nil {
					return nil
				}
				continue
			}
			attempt = 0
		case wait > 0:
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-l.wake:
				timer.Stop()
			case <-timer.C:
			}
		default:
			select {
			case <-ctx.Done():
				return nil
			case <-l.wake:
			}
		}
	}
}

// next reports whether the first batch is due to be written, or else how
// long until it is (zero when nothing is queued).
func (l *Log) next(now time.Time) (ready bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.batches) == 0 {
		return false, 0
	}
	b := l.batches[0]
	if b.sealed || len(b.recs) >= l.opts.BatchSize || len(l.batches) > 1 {
		return true, 0
	}
	wait = l.opts.FlushInterval - now.Sub(b.started)
	if wait <= 0 {
		return true, 0
	}
	return false, wait
}

// Close stops accepting records and writes every queued record, retrying
// failed writes until ctx ends. When it returns nil, every record accepted by
// Append is durable. It may be called again after a failure.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.isClosed.Store(true)
	l.mu.Unlock()
	attempt := 0
	for {
		n := l.Pending()
		if n == 0 {
			l.releaseStatements()
			return nil
		}
		if err := ctx.Err(); err != nil {
			if f := l.failure.Load(); f != nil {
				err = errors.Join(err, *f)
			}
			return fmt.Errorf("audit: close: %d evidence records not written: %w", n, err)
		}
		if _, err := l.flush(ctx); err != nil {
			attempt++
			_ = l.retryWait(ctx, l.backoff(attempt)) // ctx is checked above
			continue
		}
		attempt = 0
	}
}

// releaseStatements closes the prepared INSERTs once nothing is left to
// write; a later write (after Close failed) prepares them again.
func (l *Log) releaseStatements() {
	l.writerTok <- struct{}{}
	l.inserts.close()
	<-l.writerTok
}

// backoff is the wait before retry number attempt (from 1).
func (l *Log) backoff(attempt int) time.Duration {
	d := l.opts.RetryMin
	for i := 1; i < attempt && d < l.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, l.opts.RetryMax)
}

func waitFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// flush writes the first batch, if any, in one transaction.
func (l *Log) flush(ctx context.Context) (int, error) {
	select {
	case l.writerTok <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-l.writerTok }()

	l.mu.Lock()
	if len(l.batches) == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	b := l.batches[0]
	b.sealed = true
	recs := b.recs
	l.mu.Unlock()

	var err error
	if !l.discard {
		err = l.write(ctx, recs)
	}
	if err != nil {
		l.failed(ctx, len(recs), err)
	} else {
		l.done(b)
	}
	if l.afterBatch != nil {
		l.afterBatch(len(recs), err)
	}
	return len(recs), err
}

// done drops a written batch from the queue and marks the log healthy.
func (l *Log) done(b *batch) {
	n := len(b.recs)
	// Written and health change before Pending drops, so a Close that sees
	// nothing pending also sees them.
	l.written.Add(uint64(n))
	recovered := l.failure.Swap(nil) != nil
	l.mu.Lock()
	l.batches[0] = nil
	l.batches = l.batches[1:]
	clear(b.recs)
	b.recs = b.recs[:0]
	b.sealed = false
	if len(l.free) < maxFree {
		l.free = append(l.free, b)
	}
	l.count -= n
	l.pending.Store(int64(l.count))
	l.mu.Unlock()
	if recovered {
		l.log.Info("evidence log writable again", "pending", l.Pending())
	}
}

// failed marks the log unavailable after a failed write. A write cut short
// by the caller's context says nothing about the store, so it leaves the
// log's health as it was.
func (l *Log) failed(ctx context.Context, n int, err error) {
	l.recheck = true
	if ctx.Err() != nil {
		return
	}
	wrapped := fmt.Errorf("%w: %w", ErrUnavailable, err)
	l.failure.Store(&wrapped)
	if errors.Is(err, ErrDuplicateDecision) {
		l.log.Error("evidence not written: a decision id was appended twice; writes stop until it is resolved",
			"error", err, "batch", n, "pending", l.Pending())
		return
	}
	l.log.Error("evidence not written; records are kept and retried", "error", err, "batch", n, "pending", l.Pending())
}
