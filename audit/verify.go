package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

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
	problemHashSize = "prev_hash or hash is not 32 bytes"
)

// Verify walks the whole chain in seq order and reports the first link that
// does not hold: a missing seq, a prev_hash that is not the previous record's
// hash, a hash that is not SHA-256(hex(prev_hash) "\n" record), a hash that
// is not 32 bytes, or a decision_id column that disagrees with the record. An
// error means the log could not be read, not that it is broken.
func Verify(ctx context.Context, db *store.DB) (VerifyResult, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, decision_id, record, prev_hash, hash FROM evidence ORDER BY seq`)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	res := VerifyResult{OK: true}
	prevSeq, prevHash := int64(0), genesis[:]
	c := newChainer()
	for rows.Next() {
		var (
			seq                     int64
			decisionID              string
			body, linkHash, ownHash []byte
		)
		if err := rows.Scan(&seq, &decisionID, &body, &linkHash, &ownHash); err != nil {
			return VerifyResult{}, fmt.Errorf("audit: verify: %w", err)
		}
		res.Records++
		if res.OK {
			if problem := checkLink(c, prevSeq, prevHash, seq, decisionID, body, linkHash, ownHash); problem != "" {
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
func checkLink(c *chainer, prevSeq int64, prevHash []byte, seq int64, decisionID string, body, linkHash, ownHash []byte) string {
	if seq != prevSeq+1 {
		return fmt.Sprintf(problemGap, prevSeq)
	}
	link, okLink := toHash(linkHash)
	own, okOwn := toHash(ownHash)
	if !okLink || !okOwn {
		return problemHashSize
	}
	if !bytes.Equal(linkHash, prevHash) {
		return problemPrevHash
	}
	if c.next(link, body) != own {
		return problemAltered
	}
	var head struct {
		DecisionID string `json:"decision_id"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return problemUnparsed
	}
	if head.DecisionID != decisionID {
		return problemID
	}
	return ""
}
