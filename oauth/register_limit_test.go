package oauth

import (
	"fmt"
	"testing"
	"time"
)

// The per-address limiters are bounded: the least recently seen address
// is forgotten first, and a recently seen one keeps its bucket.
func TestRegistrationLimiterBounded(t *testing.T) {
	l := newRateLimiter(RateLimit{PerMinute: 1, Burst: 1})
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l.overall.SetBurstAt(now, 1<<30)
	l.overall.SetLimitAt(now, 1<<30)
	if wait, _ := l.take("keep", now); wait != 0 {
		t.Fatal("first request limited")
	}
	for i := range 3 * maxLimitedAddresses {
		if i%100 == 0 {
			l.take("keep", now) // recently seen: stays
		}
		l.take(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n, m := len(l.addrs), l.lru.Len(); n != maxLimitedAddresses || m != n {
		t.Errorf("%d addresses in the map, %d in the list; want %d", n, m, maxLimitedAddresses)
	}
	if wait, who := l.take("keep", now); wait == 0 || who != "from this address" {
		t.Errorf("a recently seen address lost its bucket (wait %v, %q)", wait, who)
	}
}

func TestClientAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":             "192.0.2.1",
		"[::ffff:192.0.2.1]:443":    "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:80": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:80":      "2001:db8:1:3::/64",
		"not-an-address":            "not-an-address",
	} {
		if got := clientAddress(in); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
