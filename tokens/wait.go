package tokens

// Wait blocks until recent writes to the mint cache are visible to Mint.
// Tests and benchmarks use it instead of sleeping.
func (m *Minter) Wait() { m.cache.Wait() }

// Wait blocks until recent writes to the verification cache are visible to
// Verify. Tests and benchmarks use it instead of sleeping.
func (v *Verifier) Wait() { v.cache.Wait() }
