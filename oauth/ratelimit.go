package oauth

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// OverallFactor multiplies a RateLimit's per-address rate and burst into
// the limit over all addresses together.
const OverallFactor = 10

// maxLimitedAddresses bounds the per-address limiters kept; the least
// recently seen address is forgotten first.
const maxLimitedAddresses = 4096

// RateLimit is a token bucket per client address (and OverallFactor times
// it over all addresses).
type RateLimit struct {
	// PerMinute is the sustained rate.
	PerMinute int `yaml:"per_minute"`
	// Burst is how many may come at once.
	Burst int `yaml:"burst"`
}

// clientAddress is the rate-limit key of a remote address: the IPv4
// address, or the IPv6 /64.
func clientAddress(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// rateLimiter is a token bucket per client address, at most
// maxLimitedAddresses of them (least recently used forgotten first), and
// one over all addresses.
type rateLimiter struct {
	perAddr rate.Limit
	burst   int
	overall *rate.Limiter

	mu    sync.Mutex
	addrs map[string]*list.Element // of *addressLimiter
	lru   *list.List
}

type addressLimiter struct {
	key string
	lim *rate.Limiter
}

func newRateLimiter(c RateLimit) *rateLimiter {
	per := rate.Limit(float64(c.PerMinute) / 60)
	return &rateLimiter{
		perAddr: per,
		burst:   c.Burst,
		overall: rate.NewLimiter(per*OverallFactor, c.Burst*OverallFactor),
		addrs:   map[string]*list.Element{},
		lru:     list.New(),
	}
}

// take spends one token of addr's bucket and one of the overall bucket at
// now. It returns zero, or how long to wait and which limit ran dry.
func (l *rateLimiter) take(addr string, now time.Time) (time.Duration, string) {
	l.mu.Lock()
	el, ok := l.addrs[addr]
	if ok {
		l.lru.MoveToFront(el)
	} else {
		if l.lru.Len() >= maxLimitedAddresses {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.addrs, old.Value.(*addressLimiter).key)
		}
		el = l.lru.PushFront(&addressLimiter{key: addr, lim: rate.NewLimiter(l.perAddr, l.burst)})
		l.addrs[addr] = el
	}
	lim := el.Value.(*addressLimiter).lim
	l.mu.Unlock()

	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, "from this address"
	}
	all := l.overall.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		res.CancelAt(now)
		return d, "overall"
	}
	return 0, ""
}
