package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/writ-dev/writ/store"
)

// rowsPerInsert bounds the rows of one INSERT statement (6 parameters each,
// well under SQLite's parameter limit).
const rowsPerInsert = 128

var fullInsertSQL = buildInsertSQL(rowsPerInsert)

func insertSQL(rows int) string {
	if rows == rowsPerInsert {
		return fullInsertSQL
	}
	return buildInsertSQL(rows)
}

func buildInsertSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO evidence (seq, decision_id, at, record, prev_hash, hash) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?,?,?,?,?,?)`)
	}
	return b.String()
}

// readHead returns the seq and hash of the last record in the log, or 0 and
// genesis when it is empty.
func readHead(ctx context.Context, db *store.DB) (int64, string, error) {
	var (
		seq  int64
		hash string
	)
	err := db.QueryRowContext(ctx, `SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, genesis, nil
	case err != nil:
		return 0, "", fmt.Errorf("audit: read chain head: %w", err)
	}
	return seq, hash, nil
}

// write appends recs to the chain in one transaction and advances the head.
// Only the holder of writerTok calls it.
func (l *Log) write(ctx context.Context, recs []queued) error {
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
	args := make([]any, 0, 6*min(len(recs), rowsPerInsert))
	for start := 0; start < len(recs); start += rowsPerInsert {
		chunk := recs[start:min(start+rowsPerInsert, len(recs))]
		args = args[:0]
		for i := range chunk {
			rec := &chunk[i].rec
			body, err := encode(rec)
			if err != nil {
				return fmt.Errorf("%w: decision %q: %w", ErrInvalidRecord, rec.DecisionID, err)
			}
			seq++
			hash := chainHash(head, body)
			args = append(args, seq, rec.DecisionID, rec.Time.UnixNano(), string(body), head, hash)
			head = hash
		}
		if _, err := tx.ExecContext(ctx, insertSQL(len(chunk)), args...); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w %q: %w", ErrDuplicateDecision, duplicateID(ctx, tx, recs[:start+len(chunk)]), err)
			}
			return fmt.Errorf("write evidence seq %d..%d: %w", seq-int64(len(chunk))+1, seq, err)
		}
	}
	l.ending = chainPos{seq: seq, hash: head}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit evidence batch: %w", err)
	}
	l.seq, l.head = seq, head
	return nil
}

// isUniqueViolation reports a UNIQUE constraint failure; in the evidence
// table only decision_id is UNIQUE (a seq clash is a PRIMARY KEY failure).
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// duplicateID names the decision id behind a UNIQUE failure while writing
// recs: one repeated within recs, or one already stored.
func duplicateID(ctx context.Context, tx *sql.Tx, recs []queued) string {
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		id := recs[i].rec.DecisionID
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	for i := range recs {
		var one int
		id := recs[i].rec.DecisionID
		if tx.QueryRowContext(ctx, `SELECT 1 FROM evidence WHERE decision_id = ?`, id).Scan(&one) == nil {
			return id
		}
	}
	return "unknown"
}
