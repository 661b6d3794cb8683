package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/writ-dev/writ/store"
)

const insertSQL = `INSERT INTO evidence (seq, decision_id, at, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)`

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
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return fmt.Errorf("prepare evidence insert: %w", err)
	}
	defer stmt.Close()
	seq, head := l.seq, l.head
	for i := range recs {
		rec := &recs[i].rec
		body, err := encode(rec)
		if err != nil {
			return fmt.Errorf("%w: decision %q: %w", ErrInvalidRecord, rec.DecisionID, err)
		}
		seq++
		hash := chainHash(head, body)
		if _, err := stmt.ExecContext(ctx, seq, rec.DecisionID, rec.Time.UnixNano(), string(body), head, hash); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("%w %q: %w", ErrDuplicateDecision, rec.DecisionID, err)
			}
			return fmt.Errorf("write evidence seq %d: %w", seq, err)
		}
		head = hash
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
