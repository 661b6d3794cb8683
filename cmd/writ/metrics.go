package main

import "github.com/prometheus/client_golang/prometheus"

// cacheStater is a cache that counts its lookups (tokens.Verifier,
// policies.Engine, tokens.Minter).
type cacheStater interface {
	CacheStats() (hits, misses uint64)
}

// namedCache is one cache reported under writ_cache_requests_total.
type namedCache struct {
	name  string
	cache cacheStater
}

// cacheCollector reports the caches' own lookup counters at scrape time, so
// the Check path pays nothing beyond the caches' atomic adds.
type cacheCollector struct {
	desc   *prometheus.Desc
	caches []namedCache
}

func newCacheCollector(caches ...namedCache) *cacheCollector {
	return &cacheCollector{
		desc: prometheus.NewDesc("writ_cache_requests_total",
			"Cache lookups on the Check path by cache (verify: inbound token identities, decision: policy decisions, mint: writ tokens) and result (hit, miss); hit ratio = hit / (hit + miss).",
			[]string{"cache", "result"}, nil),
		caches: caches,
	}
}

// Describe implements prometheus.Collector.
func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for _, nc := range c.caches {
		hits, misses := nc.cache.CacheStats()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(hits), nc.name, "hit")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(misses), nc.name, "miss")
	}
}
