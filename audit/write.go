package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/writ-dev/writ/store"
)

// rowArgs is how many values each row binds; a chunk binds one more, its
// first seq.
const rowArgs = 4

// maxRowsLog2 sets the rows of the largest INSERT: 1<<maxRowsLog2. A batch is
// written as full INSERTs of that size and then, for the rest, at most one
// INSERT of each smaller power of two, so maxRowsLog2+1 prepared statements
// cover any batch size.
const maxRowsLog2 = 8

const maxRows = 1 << maxRowsLog2

// insertSQL returns the INSERT of rows rows. Its arguments are the first
// row's seq, then prev_hash, decision_id, record and hash for each row; a
// row's seq is the first plus its index, so only one is bound. The record is
// bound as bytes and stored as TEXT.
func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO evidence (seq, prev_hash, decision_id, record, hash) VALUES `)
	for k := range rows {
		if k > 0 {
			fmt.Fprintf(&b, `,(?1+%d,`, k)
		} else {
			b.WriteString(`(?1,`)
		}
		b.WriteString(`?,?,CAST(? AS TEXT),?)`)
	}
	return b.String()
}

// inserts holds the prepared INSERT of 1<<k rows at index k, prepared on
// first use and reused by every batch after. Only the holder of writerTok
// touches it.
type inserts [maxRowsLog2 + 1]*sql.Stmt

// stmt returns the INSERT of rows rows (a power of two) for tx.
func (s *inserts) stmt(ctx context.Context, db *store.DB, tx *sql.Tx, rows int) (*sql.Stmt, error) {
	k := bits.TrailingZeros(uint(rows))
	if s[k] == nil {
		st, err := db.PrepareContext(ctx, insertSQL(rows))
		if err != nil {
			return nil, fmt.Errorf("prepare evidence insert: %w", err)
		}
		s[k] = st
	}
	// database/sql reuses the statement already prepared on tx's connection.
	return tx.StmtContext(ctx, s[k]), nil
}

func (s *inserts) close() {
	for k, st := range s {
		if st != nil {
			st.Close()
			s[k] = nil
		}
	}
}

// chunkRows returns how many of n remaining rows the next INSERT writes: the
// largest power of two not above n, capped at maxRows.
func chunkRows(n int) int {
	if n >= maxRows {
		return maxRows
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// readHead returns the seq and hash of the last record in the log, or 0 and
// genesis when it is empty.
func readHead(ctx context.Context, db *store.DB) (int64, chainHash, error) {
	var (
		seq int64
		raw []byte
	)
	err := db.QueryRowContext(ctx, `SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1`).Scan(&seq, &raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, genesis, nil
	case err != nil:
		return 0, chainHash{}, fmt.Errorf("audit: read chain head: %w", err)
	}
	h, ok := toHash(raw)
	if !ok {
		return 0, chainHash{}, fmt.Errorf("audit: read chain head: seq %d: %w", seq, errHashLength)
	}
	return seq, h, nil
}

// write appends recs to the chain in one transaction and advances the head.
// Only the holder of writerTok calls it.
func (l *Log) write(ctx context.Context, recs []Record) error {
	if l.recheck {
		// The last write failed. Its commit may have gone through before the
		// error surfaced, or another writer may have appended: start from
		// what the database holds.
		seq, head, err := readHead(ctx, l.db)
		if err != nil {
			return err
		}
		switch {
		case seq == l.seq && head == l.head:
		case seq == l.ending.seq && head == l.ending.hash:
			l.seq, l.head, l.recheck = seq, head, false
			return nil
		default:
			l.log.Warn("evidence chain head moved under this writer; continuing from the last stored record",
				"seq", seq, "expected_seq", l.seq)
			l.seq, l.head = seq, head
		}
		l.recheck = false
	}
	l.ending = chainPos{}

	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin evidence batch: %w", err)
	}
	defer tx.Rollback()
	seq, head := l.seq, l.head
	defer l.release()
	for start := 0; start < len(recs); {
		chunk := recs[start : start+chunkRows(len(recs)-start)]
		// One buffer holds the chunk's links, each record's JSON between its
		// prev_hash and its hash: head, rec0, hash0, rec1, hash1, ... The
		// arguments are slices of it; the driver copies every bound value
		// before the statement runs.
		l.buf = append(l.buf[:0], head[:]...)
		l.ends = l.ends[:0]
		for i := range chunk {
			rec := &chunk[i]
			from := len(l.buf)
			if l.buf, err = appendRecord(l.buf, rec); err != nil {
				return fmt.Errorf("%w: decision %q: %w", ErrInvalidRecord, rec.DecisionID, err)
			}
			head = l.chain.next(head, l.buf[from:])
			l.buf = append(l.buf, head[:]...)
			l.ends = append(l.ends, len(l.buf))
		}
		buf := l.buf
		l.args = append(l.args[:0], seq+1)
		from := hashSize
		for i, end := range l.ends {
			l.args = append(l.args, buf[from-hashSize:from:from], chunk[i].DecisionID,
				buf[from:end-hashSize:end-hashSize], buf[end-hashSize:end:end])
			from = end
		}
		seq += int64(len(chunk))
		st, err := l.inserts.stmt(ctx, l.db, tx, len(chunk))
		if err == nil {
			_, err = st.ExecContext(ctx, l.args...)
		}
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w %q: %w", ErrDuplicateDecision, duplicateID(ctx, tx, recs[:start+len(chunk)]), err)
			}
			return fmt.Errorf("write evidence seq %d..%d: %w", seq-int64(len(chunk))+1, seq, err)
		}
		start += len(chunk)
	}
	l.ending = chainPos{seq: seq, hash: head}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit evidence batch: %w", err)
	}
	l.seq, l.head = seq, head
	return nil
}

// maxKeptBuffer is the largest chunk buffer kept between batches; a larger
// one (a batch of unusually large records) is left to the collector.
const maxKeptBuffer = 1 << 20

// release drops the references a batch left in the reused buffers.
func (l *Log) release() {
	clear(l.args[:cap(l.args)])
	l.args = l.args[:0]
	if cap(l.buf) > maxKeptBuffer {
		l.buf = nil
	}
}

// isUniqueViolation reports a UNIQUE constraint failure; in the evidence
// table only decision_id is UNIQUE (a seq clash is a PRIMARY KEY failure).
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// duplicateID names the decision id behind a UNIQUE failure while writing
// recs: one repeated within recs, or one already stored.
func duplicateID(ctx context.Context, tx *sql.Tx, recs []Record) string {
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		id := recs[i].DecisionID
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	for i := range recs {
		var one int
		id := recs[i].DecisionID
		if tx.QueryRowContext(ctx, `SELECT 1 FROM evidence WHERE decision_id = ?`, id).Scan(&one) == nil {
			return id
		}
	}
	return "unknown"
}
