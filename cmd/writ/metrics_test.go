package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

type fakeCache struct{ hits, misses uint64 }

func (f *fakeCache) CacheStats() (uint64, uint64) { return f.hits, f.misses }

// gatherCacheRequests returns writ_cache_requests_total by "cache/result".
func gatherCacheRequests(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "writ_cache_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetCounter() == nil {
				t.Fatalf("%v is not a counter", m)
			}
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["cache"]+"/"+labels["result"]] = m.GetCounter().GetValue()
		}
	}
	return got
}

func TestCacheCollector(t *testing.T) {
	verify, mint := &fakeCache{hits: 7, misses: 3}, &fakeCache{hits: 1, misses: 2}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCacheCollector(namedCache{"verify", verify}, namedCache{"mint", mint}))
	want := map[string]float64{"verify/hit": 7, "verify/miss": 3, "mint/hit": 1, "mint/miss": 2}
	if diff := cmp.Diff(want, gatherCacheRequests(t, reg)); diff != "" {
		t.Fatalf("writ_cache_requests_total (-want +got):\n%s", diff)
	}
	// Read at scrape time: later lookups show without anything else to do.
	verify.hits, mint.misses = 9, 4
	want["verify/hit"], want["mint/miss"] = 9, 4
	if diff := cmp.Diff(want, gatherCacheRequests(t, reg)); diff != "" {
		t.Fatalf("after more lookups (-want +got):\n%s", diff)
	}
}
