package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/writ-dev/writ/store"
)

// VerifyResult is the outcome of walking the chain.
type VerifyResult struct {
	// Records is how many records the log holds (all were read).
	Records int
	// OK is true when every link holds.
	OK bool
	// FirstBroken is the seq of the first record whose link does not hold,
	// 0 when OK.
	FirstBroken int64
	// Problem says what is wrong with FirstBroken, "" when OK.
	Problem string
}

// The problems Verify names.
const (
	problemAltered  = "hash mismatch: record altered"
	problemPrevHash = "prev_hash does not match the previous record's hash"
	problemGap      = "seq gap after %d"
	problemUnparsed = "record is not valid JSON"
	problemID       = "decision_id column does not match the record"
	problemAt       = "at column does not match the record's time"
)

// Verify walks the whole chain in seq order and reports the first link that
// does not hold: a missing seq, a prev_hash that is not the previous record's
// hash, a hash that is not SHA-256(prev_hash "\n" record), or decision_id and
// at columns that disagree with the record. An error means the log could not
// be read, not that it is broken.
func Verify(ctx context.Context, db *store.DB) (VerifyResult, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, decision_id, at, record, prev_hash, hash FROM evidence ORDER BY seq`)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	res := VerifyResult{OK: true}
	prevSeq, prevHash := int64(0), genesis
	for rows.Next() {
		var (
			seq                     int64
			decisionID              string
			at                      int64
			body, linkHash, ownHash string
		)
		if err := rows.Scan(&seq, &decisionID, &at, &body, &linkHash, &ownHash); err != nil {
			return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
		}
		res.Records++
		if res.OK {
			if problem := checkLink(prevSeq, prevHash, seq, decisionID, at, body, linkHash, ownHash); problem != "" {
				res.OK, res.FirstBroken, res.Problem = false, seq, problem
			}
		}
		prevSeq, prevHash = seq, ownHash
	}
	if err := rows.Err(); err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	return res, nil
}

// checkLink returns what is wrong with one row given the row before it, or "".
func checkLink(prevSeq int64, prevHash string, seq int64, decisionID string, at int64, body, linkHash, ownHash string) string {
	if seq != prevSeq+1 {
		return fmt.Sprintf(problemGap, prevSeq)
	}
	if linkHash != prevHash {
		return problemPrevHash
	}
	if chainHash(linkHash, []byte(body)) != ownHash {
		return problemAltered
	}
	var head struct {
		DecisionID string    `json:"decision_id"`
		Time       time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(body), &head); err != nil {
		return problemUnparsed
	}
	if head.DecisionID != decisionID {
		return problemID
	}
	if head.Time.UnixNano() != at {
		return problemAt
	}
	return ""
}
