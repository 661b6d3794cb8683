package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/writ-dev/writ/store"
)

// Stored is where a record sits in the chain. The hashes are hex; the
// table holds them as 32 raw bytes.
type Stored struct {
	Seq      int64
	PrevHash string
	Hash     string
}

// Find returns the record of one decision and its place in the chain, or
// ErrNotFound. It does not check the chain; Verify does.
func Find(ctx context.Context, db *store.DB, decisionID string) (Record, Stored, error) {
	var (
		st             Stored
		body           string
		prevHash, hash []byte
	)
	err := db.QueryRowContext(ctx, `SELECT seq, record, prev_hash, hash FROM evidence WHERE decision_id = ?`, decisionID).
		Scan(&st.Seq, &body, &prevHash, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Record{}, Stored{}, ErrNotFound
	case err != nil:
		return Record{}, Stored{}, fmt.Errorf("audit: find decision: %w", err)
	}
	st.PrevHash, st.Hash = hex.EncodeToString(prevHash), hex.EncodeToString(hash)
	var rec Record
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		return Record{}, Stored{}, fmt.Errorf("audit: decode record seq %d: %w", st.Seq, err)
	}
	return rec, st, nil
}

// Tail returns the newest n records, oldest first.
func Tail(ctx context.Context, db *store.DB, n int) ([]Record, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx,
		`SELECT seq, record FROM (SELECT seq, record FROM evidence ORDER BY seq DESC LIMIT ?) ORDER BY seq`, n)
	if err != nil {
		return nil, fmt.Errorf("audit: tail: %w", err)
	}
	defer rows.Close()
	recs := make([]Record, 0, n)
	for rows.Next() {
		var (
			seq  int64
			body string
		)
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, fmt.Errorf("audit: tail: %w", err)
		}
		var rec Record
		if err := json.Unmarshal([]byte(body), &rec); err != nil {
			return nil, fmt.Errorf("audit: decode record seq %d: %w", seq, err)
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: tail: %w", err)
	}
	return recs, nil
}
