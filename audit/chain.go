package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// genesis is the prev_hash of the first record in the log.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// encode returns the JSON of rec exactly as it is stored and hashed.
// encoding/json renders a Record deterministically (fields in declaration
// order, no maps), and the chain hashes the stored bytes themselves, so
// verification never re-serialises anything.
func encode(rec *Record) ([]byte, error) {
	return json.Marshal(rec)
}

// chainHash links record to the record before it.
func chainHash(prevHash string, record []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(record)
	return hex.EncodeToString(h.Sum(nil))
}

// validate rejects what encode would fail on, so a queued record can always
// be written.
func validate(rec *Record) error {
	if rec.DecisionID == "" {
		return fmt.Errorf("%w: no decision id", ErrInvalidRecord)
	}
	check := func(name string, t time.Time) error {
		if t.IsZero() {
			return nil
		}
		if y := t.Year(); y < 0 || y > 9999 {
			return fmt.Errorf("%w: %s year %d outside [0, 9999]", ErrInvalidRecord, name, y)
		}
		if _, offset := t.Zone(); offset <= -24*60*60 || offset >= 24*60*60 {
			return fmt.Errorf("%w: %s zone offset %ds out of range", ErrInvalidRecord, name, offset)
		}
		return nil
	}
	if err := check("time", rec.Time); err != nil {
		return err
	}
	if a := rec.Approval; a != nil {
		if err := check("approval requested_at", a.Requested); err != nil {
			return err
		}
		if err := check("approval decided_at", a.Decided); err != nil {
			return err
		}
	}
	if tok := rec.Token; tok != nil {
		if err := check("token expires_at", tok.ExpiresAt); err != nil {
			return err
		}
	}
	return nil
}
