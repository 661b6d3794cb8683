package policies

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultDecisionCacheSize is how many decisions an engine keeps when
// Options.DecisionCacheSize is zero.
const DefaultDecisionCacheSize = 100_000

// maxStoredInput is the longest canonical input an entry keeps to compare
// byte for byte on a hit. A longer one is kept as its SHA3-256 digest,
// compared beside the SHA-256 digest in the key, so an entry's size stays
// bounded whatever the policy reads.
const maxStoredInput = 512

// clockBuiltins are builtins whose result can depend on the clock, on
// randomness, on the network or on the process environment, listed by
// name whether or not OPA marks them nondeterministic: a revision that
// refers to any of them, or to any time.* builtin, is never cached.
var clockBuiltins = map[string]bool{
	"http.send":              true, // the network
	"net.lookup_ip_addr":     true, // DNS
	"opa.runtime":            true, // environment variables, configuration
	"rand.intn":              true,
	"uuid.rfc4122":           true,
	"io.jwt.decode_verify":   true, // checks exp and nbf against the clock
	"io.jwt.encode_sign":     true, // ECDSA and RSA-PSS signatures are randomised
	"io.jwt.encode_sign_raw": true,
	"crypto.x509.parse_and_verify_certificates":              true, // validity against the clock
	"crypto.x509.parse_and_verify_certificates_with_options": true,
	"json.match_schema":  true, // a schema may fetch remote references
	"json.verify_schema": true,
}

// nondeterministicBuiltin reports whether a call to the builtin called name
// can return different results for the same arguments.
func nondeterministicBuiltin(name string) bool {
	if clockBuiltins[name] || strings.HasPrefix(name, "time.") {
		return true
	}
	b, ok := ast.BuiltinMap[name]
	return ok && b.Nondeterministic
}

// nondeterministicRef finds, in every rule of the compiled modules, the
// first reference that names a nondeterministic builtin: a call, or a
// `with` that puts one in place of another function. It reports the
// builtin and where the reference is, or "" when there is none. Every
// module is searched, not only what the entrypoint reaches, so functions
// and rules called from anywhere count.
func nondeterministicRef(c *ast.Compiler) (string, *ast.Location) {
	var name string
	var loc *ast.Location
	vis := ast.NewGenericVisitor(func(x any) bool {
		if name != "" {
			return true
		}
		t, ok := x.(*ast.Term)
		if !ok {
			return false
		}
		ref, ok := t.Value.(ast.Ref)
		if !ok {
			return false
		}
		if s := ref.String(); nondeterministicBuiltin(s) {
			name, loc = s, t.Location
			return true
		}
		return false
	})
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			vis.Walk(r)
		}
	}
	return name, loc
}

// uncacheableReason says why a revision's decisions are never cached, or
// "" when they are.
func uncacheableReason(c *ast.Compiler) string {
	name, loc := nondeterministicRef(c)
	switch {
	case name == "":
		return ""
	case loc != nil:
		return fmt.Sprintf("calls %s at %s:%d", name, loc.File, loc.Row)
	default:
		return "calls " + name
	}
}

// decisionCache holds successful decisions of cacheable revisions, keyed
// by the revision and the pruned input.
type decisionCache struct {
	entries      *ristretto.Cache[string, *cacheEntry]
	hits, misses atomic.Uint64
}

// cacheEntry is one decision with what it was decided for.
type cacheEntry struct {
	generation uint64   // the revision that decided
	digest     [32]byte // SHA-256 of the revision and the canonical input
	long       bool     // the canonical input is longer than maxStoredInput
	input      string   // the canonical input, when not long
	inputSHA3  [32]byte // SHA3-256 of the canonical input, when long
	decision   Decision
}

func newDecisionCache(size int) (*decisionCache, error) {
	entries, err := ristretto.NewCache(&ristretto.Config[string, *cacheEntry]{
		NumCounters:        10 * int64(size),
		MaxCost:            int64(size),
		BufferItems:        64,
		IgnoreInternalCost: true,
		// Keys are SHA-256 digests: their first 128 bits are already
		// uniform, and an entry is checked in full on every hit.
		KeyToHash: func(k string) (uint64, uint64) {
			return binary.LittleEndian.Uint64([]byte(k[:8])), binary.LittleEndian.Uint64([]byte(k[8:16]))
		},
	})
	if err != nil {
		return nil, err
	}
	return &decisionCache{entries: entries}, nil
}

// cacheKey identifies a (revision, pruned input) pair.
type cacheKey struct {
	generation uint64
	digest     [32]byte
	canonical  []byte // the canonical input, in a pooled buffer
	buf        *[]byte
}

var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// keyOf computes the key of input, an OPA value, under rev. It is false
// when the input holds a value that has no canonical form (it never does
// when Decide built it). release must be called once the key is no longer
// used. Decide computes the same key from the Go input (keyFromGo).
func keyOf(rev *revision, input ast.Value) (cacheKey, bool) {
	buf, b, prefix := startKey(rev)
	b, ok := appendCanonical(b, input, 0)
	return finishKey(rev, buf, b, prefix, ok)
}

// startKey takes a pooled buffer and writes the revision into it; the
// canonical input follows from prefix on.
func startKey(rev *revision) (buf *[]byte, b []byte, prefix int) {
	buf = keyBuffers.Get().(*[]byte)
	b = binary.BigEndian.AppendUint64((*buf)[:0], rev.generation)
	b = appendCanonicalString(b, rev.id)
	return buf, b, len(b)
}

// finishKey digests b, the revision and the canonical input, into a key;
// when !ok it returns the buffer to the pool and no key.
func finishKey(rev *revision, buf *[]byte, b []byte, prefix int, ok bool) (cacheKey, bool) {
	*buf = b[:0]
	if !ok {
		keyBuffers.Put(buf)
		return cacheKey{}, false
	}
	return cacheKey{generation: rev.generation, digest: sha256.Sum256(b), canonical: b[prefix:], buf: buf}, true
}

func (k *cacheKey) release() {
	if cap(*k.buf) <= 64<<10 { // keep the pool from holding huge buffers
		keyBuffers.Put(k.buf)
	}
	k.buf, k.canonical = nil, nil
}

// lookup returns the decision stored for k. An entry is returned only
// when its revision, its full digest and its canonical input (or, for a
// long input, a second digest of it by an independent hash) all match, so
// neither a collision of ristretto's 128-bit key hash nor one of SHA-256
// alone can return the decision made for another input.
func (c *decisionCache) lookup(k *cacheKey) (Decision, bool) {
	e, ok := c.entries.Get(string(k.digest[:]))
	if ok && e.generation == k.generation && e.digest == k.digest && e.matches(k.canonical) {
		c.hits.Add(1)
		return e.decision, true
	}
	c.misses.Add(1)
	return Decision{}, false
}

func (e *cacheEntry) matches(canonical []byte) bool {
	if len(canonical) > maxStoredInput {
		return e.long && e.inputSHA3 == sha3.Sum256(canonical)
	}
	return !e.long && e.input == string(canonical)
}

// store keeps d as the decision for k. Ristretto may drop or refuse it.
func (c *decisionCache) store(k *cacheKey, d Decision) {
	e := &cacheEntry{generation: k.generation, digest: k.digest, decision: d}
	if len(k.canonical) > maxStoredInput {
		e.long, e.inputSHA3 = true, sha3.Sum256(k.canonical)
	} else {
		e.input = string(k.canonical)
	}
	c.entries.Set(string(k.digest[:]), e, 1)
}

// Canonical encoding of an input value. Every value starts with a tag
// byte; strings and numbers continue with their length and bytes, arrays
// with their length and elements, objects with their length and their
// key-value pairs in ascending key order (ast.Compare). Each encoding is
// therefore self-delimiting, so two values have the same encoding exactly
// when they are the same JSON document with the same number spellings
// (1 and 1.0 are encoded differently, which costs a miss, never a wrong
// decision). Key order never depends on insertion order.
const (
	tagNull   = 'z'
	tagFalse  = 'f'
	tagTrue   = 't'
	tagNumber = 'n'
	tagString = 's'
	tagArray  = 'a'
	tagObject = 'o'
)

// appendCanonical appends the canonical encoding of v. It is false for a
// value that is not JSON data (a set, a reference, ...) or is nested more
// deeply than an input may be.
func appendCanonical(b []byte, v ast.Value, depth int) ([]byte, bool) {
	if depth > maxInputDepth+8 {
		return b, false
	}
	switch v := v.(type) {
	case ast.Null:
		return append(b, tagNull), true
	case ast.Boolean:
		if v {
			return append(b, tagTrue), true
		}
		return append(b, tagFalse), true
	case ast.Number:
		b = append(b, tagNumber)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...), true
	case ast.String:
		return appendCanonicalString(b, string(v)), true
	case *ast.Array:
		b = append(b, tagArray)
		b = binary.AppendUvarint(b, uint64(v.Len()))
		for i := range v.Len() {
			var ok bool
			if b, ok = appendCanonical(b, v.Elem(i).Value, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case ast.Object:
		keys := v.Keys()
		// OPA returns keys sorted already; sorting here makes the order
		// this encoding's own guarantee.
		slices.SortFunc(keys, func(x, y *ast.Term) int { return ast.Compare(x.Value, y.Value) })
		b = append(b, tagObject)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			var ok bool
			if b, ok = appendCanonical(b, k.Value, depth+1); !ok {
				return b, false
			}
			if b, ok = appendCanonical(b, v.Get(k).Value, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	}
	return b, false
}

func appendCanonicalString(b []byte, s string) []byte {
	b = append(b, tagString)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
