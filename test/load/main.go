// Command load measures writ's Check path against a no-op ext_authz floor in
// the same run. It builds and starts the real writ binary and the no-op
// server (test/load/noop) on loopback, drives both over gRPC with a
// delegated-token MCP tools/call workload (1,000 distinct users, 10 agents),
// and prints throughput as a ratio to the floor, p50/p99 at saturation, and
// p50/p99 at half of writ's saturation throughput.
//
//	go run ./test/load                      # defaults: 50 workers, 5s a phase
//	go run ./test/load -c 50 -d 10s
//
// Every request goes to 127.0.0.1; each phase stops by itself after -d.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/writ-dev/writ/test/writtest"
)

func main() {
	workers := flag.Int("c", 50, "concurrent workers at saturation")
	pacedWorkers := flag.Int("paced", 8, "workers in the paced half-load phases (enough for the offered rate; fewer workers, less scheduling noise)")
	conns := flag.Int("conns", 4, "gRPC connections per target")
	dur := flag.Duration("d", 5*time.Second, "duration of each measured phase")
	users := flag.Int("users", 1000, "distinct users")
	agents := flag.Int("agents", 10, "distinct agents")
	soak := flag.Duration("soak", 0, "after the measured phases, drive writ at half its saturation rate this long and print its resident memory every 30s")
	flag.Parse()

	h := &harness{}
	defer h.cleanup()
	if err := run(h, *workers, *pacedWorkers, *conns, *dur, *users, *agents, *soak); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		h.cleanup()
		os.Exit(1)
	}
}

func run(h *harness, workers, pacedWorkers, conns int, dur time.Duration, users, agents int, soak time.Duration) error {
	bin := writtest.Build(h)
	idp := writtest.NewIssuer(h)
	w := writtest.Start(h, bin, writtest.Options{
		Issuers: []*writtest.Issuer{idp},
		Config:  "log:\n  level: warn\n", // one log line per decision is the default; the load run measures the path, not stderr
	})
	noopAddr, err := startNoop(h)
	if err != nil {
		return err
	}

	// The workload: every request a tools/call from one of users×agents
	// delegated identities, with arguments that vary.
	reqs := make([]*authv3.CheckRequest, 0, users)
	for u := 0; u < users; u++ {
		tok := idp.Delegated(h, fmt.Sprintf("user-%d", u), fmt.Sprintf("agent-%d", u%agents), "tenant-a")
		reqs = append(reqs, writtest.ToolCall("search_issues", map[string]any{"q": "bug", "page": u % 7}, tok, nil))
	}

	floorClients, err := dial(noopAddr, conns)
	if err != nil {
		return err
	}
	writClients, err := dial(w.GRPC, conns)
	if err != nil {
		return err
	}

	fmt.Printf("load: %d workers (%d paced), %d connections per target, %s per phase, %d users, %d agents, GOMAXPROCS=%d\n",
		workers, pacedWorkers, conns, dur, users, agents, runtimeProcs())
	// Warm up both (JIT-free, but caches, connections and the policy want it).
	drive(floorClients, reqs, workers, time.Second, 0)
	drive(writClients, reqs, workers, 2*time.Second, 0)

	floor := drive(floorClients, reqs, workers, dur, 0)
	full := drive(writClients, reqs, workers, dur, 0)
	if full.errors > 0 || full.denied > 0 {
		return fmt.Errorf("writ answered %d errors and %d denials in the load run; every request should be allowed", full.errors, full.denied)
	}
	half := drive(writClients, reqs, pacedWorkers, dur, full.rps/2)
	floorHalf := drive(floorClients, reqs, pacedWorkers, dur, full.rps/2)

	fmt.Printf("no-op floor:        %8.0f checks/s  p50 %-9s p99 %s\n", floor.rps, floor.p50, floor.p99)
	fmt.Printf("writ (full path):   %8.0f checks/s  p50 %-9s p99 %s\n", full.rps, full.p50, full.p99)
	fmt.Printf("ratio to floor:     %.2f\n", full.rps/floor.rps)
	fmt.Printf("writ at half load:  %8.0f checks/s  p50 %-9s p99 %s (half of writ's saturation)\n", half.rps, half.p50, half.p99)
	fmt.Printf("no-op at that rate: %8.0f checks/s  p50 %-9s p99 %s (what the load generator itself adds)\n", floorHalf.rps, floorHalf.p50, floorHalf.p99)
	if soak > 0 {
		return soakRun(w.Pid(), writClients, reqs, pacedWorkers, soak, full.rps/2)
	}
	return nil
}

type result struct {
	rps            float64
	p50, p99       time.Duration
	errors, denied int64
}

// drive sends requests for d from workers goroutines. rate > 0 paces the
// total to that many requests a second: each worker keeps its own schedule
// (workers/rate apart, staggered), so pacing does not depend on one shared
// ticker's resolution.
func drive(clients []authv3.AuthorizationClient, reqs []*authv3.CheckRequest, workers int, d time.Duration, rate float64) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		count     atomic.Int64
		errs      atomic.Int64
		denied    atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(workers) / rate * float64(time.Second))
	}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			c := clients[i%len(clients)]
			next := start.Add(interval * time.Duration(i) / time.Duration(workers))
			for n := i; ctx.Err() == nil; n += workers {
				if interval > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					next = next.Add(interval)
					if behind := time.Now(); next.Before(behind) {
						next = behind // never burst to catch up
					}
				}
				t0 := time.Now()
				resp, err := c.Check(ctx, reqs[n%len(reqs)])
				if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
					break // the phase ended during this call (gRPC's timer can fire before ctx's)
				}
				local = append(local, time.Since(t0))
				count.Add(1)
				switch {
				case err != nil:
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "load: first error:", err)
					}
				case resp.GetOkResponse() == nil:
					denied.Add(1)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))].Round(time.Microsecond)
	}
	return result{rps: float64(count.Load()) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), errors: errs.Load(), denied: denied.Load()}
}

func dial(addr string, n int) ([]authv3.AuthorizationClient, error) {
	out := make([]authv3.AuthorizationClient, 0, n)
	for i := 0; i < n; i++ {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		out = append(out, authv3.NewAuthorizationClient(conn))
	}
	return out, nil
}

var noopLine = regexp.MustCompile(`noop serving: grpc=(\S+)`)

func startNoop(h *harness) (string, error) {
	bin := filepath.Join(h.TempDir(), "noop")
	build := exec.Command("go", "build", "-o", bin, "./test/load/noop")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build noop: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	h.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := noopLine.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return m[1], nil
		}
	}
	return "", fmt.Errorf("noop server exited before serving")
}

// harness gives writtest what it needs outside `go test`.
type harness struct {
	cleanups []func()
	dirs     []string
}

func (h *harness) Helper()                      {}
func (h *harness) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (h *harness) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (h *harness) Cleanup(f func())             { h.cleanups = append(h.cleanups, f) }
func (h *harness) TempDir() string {
	d, err := os.MkdirTemp("", "writ-load-")
	if err != nil {
		panic(err)
	}
	h.dirs = append(h.dirs, d)
	return d
}

func (h *harness) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
	h.cleanups = nil
	for _, d := range h.dirs {
		os.RemoveAll(d)
	}
	h.dirs = nil
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// soakRun drives writ at rate for d, printing its resident memory every
// 30 s, then the growth from the first sample to the last.
func soakRun(pid int, clients []authv3.AuthorizationClient, reqs []*authv3.CheckRequest, workers int, d time.Duration, rate float64) error {
	fmt.Printf("soak: %s at %.0f checks/s\n", d, rate)
	done := make(chan result, 1)
	go func() { done <- drive(clients, reqs, workers, d, rate) }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	start := time.Now()
	var first, last int
	sample := func() {
		kb, err := rssKiB(pid)
		if err != nil {
			fmt.Println("soak: rss:", err)
			return
		}
		if first == 0 {
			first = kb
		}
		last = kb
		fmt.Printf("soak: %6s  writ rss %7d KiB\n", time.Since(start).Round(time.Second), kb)
	}
	sample()
	for {
		select {
		case r := <-done:
			sample()
			fmt.Printf("soak: %.0f checks/s, p99 %s, errors %d, denials %d; rss %d → %d KiB (%+.1f%%)\n",
				r.rps, r.p99, r.errors, r.denied, first, last, 100*float64(last-first)/float64(first))
			return nil
		case <-tick.C:
			sample()
		}
	}
}

func rssKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			_, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kb)
			return kb, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
