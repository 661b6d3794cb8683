package xds_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/xds"
)

// BenchmarkPolicyPropagation: one control plane, 200 in-process
// subscribers; each iteration changes the policy file and waits until all
// 200 have ACKed the new revision. Reports the p50 and p99 of that time.
//
//	go test -run '^$' -bench PolicyPropagation -benchtime 50x ./xds/
func BenchmarkPolicyPropagation(b *testing.B) {
	const replicas = 200
	dir := b.TempDir()
	path := filepath.Join(dir, "authz.rego")
	if err := writeFileErr(path, policy(0)); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]int{} // version → ACKs
	changed := make(chan struct{}, 1)
	srv, err := xds.NewServer(xds.ServerOptions{
		Bundle: readRego(dir), BundleDir: dir, Debounce: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
		Notify: func(e xds.Event) {
			if e.Kind != xds.ACK || e.TypeURL != xds.BundleType {
				return
			}
			mu.Lock()
			acked[e.Version]++
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx, ln) })
	for i := range replicas {
		sub := xds.NewSubscriber(xds.SubscriberOptions{
			Address: ln.Addr().String(), Node: fmt.Sprintf("writ-replica-%d", i), Logger: slog.New(slog.DiscardHandler),
			Apply: func(_ context.Context, b xds.Bundle) (string, error) { return b.Revision, nil },
		})
		wg.Go(func() { _ = sub.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	waitAll := func(version string) {
		for {
			mu.Lock()
			n := acked[version]
			mu.Unlock()
			if n >= replicas {
				return
			}
			<-changed
		}
	}
	waitAll(xds.BundleRevision(map[string]string{"authz.rego": policy(0)}, []byte(`{"limits":{"max":3}}`)))

	var times []time.Duration
	n := 0
	for b.Loop() {
		n++
		src := policy(n)
		version := xds.BundleRevision(map[string]string{"authz.rego": src}, []byte(`{"limits":{"max":3}}`))
		start := time.Now()
		if err := writeFileErr(path, src); err != nil {
			b.Fatal(err)
		}
		waitAll(version)
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[(len(times)*99)/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(replicas, "replicas")
}
