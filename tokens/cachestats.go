package tokens

import "sync/atomic"

// cacheCounters counts cache lookups: a hit serves a cached identity or
// token, a miss has to verify or mint. Hits and misses sit on separate cache
// lines, away from the fields around them, so concurrent Checks on the hot
// path do not contend on one line.
type cacheCounters struct {
	_      [64]byte
	hits   atomic.Uint64
	_      [56]byte
	misses atomic.Uint64
	_      [56]byte
}

func (c *cacheCounters) hit()  { c.hits.Add(1) }
func (c *cacheCounters) miss() { c.misses.Add(1) }

func (c *cacheCounters) load() (hits, misses uint64) {
	return c.hits.Load(), c.misses.Load()
}

// CacheStats returns how many Verify calls were served a cached identity
// (hits) and how many had to verify the token (misses), since the Verifier
// was created. Calls rejected before the lookup (an empty or oversized
// token) count as neither. The counters only grow.
func (v *Verifier) CacheStats() (hits, misses uint64) { return v.stats.load() }

// CacheStats returns how many Mint calls were served a cached token (hits)
// and how many had to sign a new one (misses), since the Minter was
// created. Requests rejected before the lookup count as neither. The
// counters only grow.
func (m *Minter) CacheStats() (hits, misses uint64) { return m.stats.load() }
