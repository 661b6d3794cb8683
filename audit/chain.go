package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"time"
)

// hashSize is the length of a chain hash: SHA-256.
const hashSize = sha256.Size

// chainHash is one link of the chain, stored as 32 raw bytes.
type chainHash [hashSize]byte

// genesis is the prev_hash of the first record in the log: 32 zero bytes,
// whose hex form (64 zeros) the first hash covers.
var genesis chainHash

// errHashLength is a stored hash that is not 32 bytes.
var errHashLength = errors.New("stored hash is not 32 bytes")

func (h chainHash) String() string { return hex.EncodeToString(h[:]) }

// toHash returns b as a chain hash, and false when it is not 32 bytes.
func toHash(b []byte) (chainHash, bool) {
	var h chainHash
	if len(b) != hashSize {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// encode returns the JSON of rec exactly as it is stored and hashed: what
// encoding/json.Marshal renders for a Record (fields in declaration order, no
// maps). The chain hashes the stored bytes themselves, so verification never
// re-serialises anything.
func encode(rec *Record) ([]byte, error) {
	return appendRecord(nil, rec)
}

// chainer computes links reusing one SHA-256 state; it is not safe for
// concurrent use.
type chainer struct {
	h hash.Hash
	// prefix is hex(prev) + "\n".
	prefix [2*hashSize + 1]byte
	sum    []byte
}

func newChainer() *chainer {
	c := &chainer{h: sha256.New()}
	c.prefix[2*hashSize] = '\n'
	return c
}

// next links record to the record before it, whose hash is prev:
// SHA-256(hex(prev) + "\n" + record).
func (c *chainer) next(prev chainHash, record []byte) chainHash {
	hex.Encode(c.prefix[:2*hashSize], prev[:])
	c.h.Reset()
	c.h.Write(c.prefix[:])
	c.h.Write(record)
	c.sum = c.h.Sum(c.sum[:0])
	return chainHash(c.sum)
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
