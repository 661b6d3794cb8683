package tokens

// WaitCache blocks until pending cache writes are applied (tests only).
func (m *Minter) WaitCache() { m.cache.Wait() }

// WaitCache blocks until pending cache writes are applied (tests only).
func (v *Verifier) WaitCache() { v.cache.Wait() }
