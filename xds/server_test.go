package xds_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/writ-dev/writ/xds"
)

const waitFor = 20 * time.Second

// events records a Server's or Subscriber's events so tests can wait on them.
type events[T any] struct {
	mu      sync.Mutex
	all     []T
	changed chan struct{}
}

func newEvents[T any]() *events[T] { return &events[T]{changed: make(chan struct{})} }

func (e *events[T]) add(v T) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, v)
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *events[T]) list() []T {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]T(nil), e.all...)
}

// wait returns the first event matching ok, waiting for it.
func (e *events[T]) wait(t *testing.T, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		for _, v := range e.all {
			if ok(v) {
				e.mu.Unlock()
				return v
			}
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; events: %+v", what, waitFor, e.list())
		}
	}
}

// readRego is the test's bundle reader: every .rego file of dir.
func readRego(dir string) func(context.Context) (xds.Bundle, error) {
	return func(context.Context) (xds.Bundle, error) {
		files, err := filepath.Glob(filepath.Join(dir, "*.rego"))
		if err != nil {
			return xds.Bundle{}, err
		}
		b := xds.Bundle{Modules: map[string]string{}, Data: []byte(`{"limits":{"max":3}}`)}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				return xds.Bundle{}, err
			}
			b.Modules[filepath.Base(f)] = string(src)
		}
		return b, nil
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func policy(n int) string {
	return fmt.Sprintf("package writ.authz\n\ndecision := {\"allow\": true, \"n\": %d}\n", n)
}

func revisionOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := readRego(dir)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return xds.BundleRevision(b.Modules, b.Data)
}

// compileCheck stands in for the policy compiler: "broken" does not compile.
func compileCheck(_ context.Context, b xds.Bundle) error {
	for name, src := range b.Modules {
		if strings.Contains(src, "broken") {
			return fmt.Errorf("%s:1: rego_parse_error: unexpected broken", name)
		}
	}
	return nil
}

type controlPlane struct {
	addr   string
	srv    *xds.Server
	reg    *prometheus.Registry
	events *events[xds.Event]
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startControlPlane serves opts on addr ("" for a fresh port) until the test ends.
func startControlPlane(t *testing.T, addr string, opts xds.ServerOptions) *controlPlane {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{addr: ln.Addr().String(), reg: prometheus.NewRegistry(), events: newEvents[xds.Event](), logs: &syncBuffer{}}
	opts.Registerer = cp.reg
	opts.Notify = cp.events.add
	opts.Logger = slog.New(slog.NewJSONHandler(cp.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Debounce == 0 {
		opts.Debounce = 10 * time.Millisecond
	}
	srv, err := xds.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	cp.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	cpStops.Store(cp, stop)
	return cp
}

var cpStops sync.Map

func (cp *controlPlane) stop() {
	if f, ok := cpStops.Load(cp); ok {
		f.(func())()
	}
}

// replica is a Subscriber whose Apply records what it was given.
type replica struct {
	sub     *xds.Subscriber
	applied *events[string] // revisions applied (or "error:"+revision)
	done    chan struct{}
	cancel  context.CancelFunc
}

func startReplica(t *testing.T, addr, node string, reject func(xds.Bundle) error, opts xds.SubscriberOptions) *replica {
	t.Helper()
	r := &replica{applied: newEvents[string](), done: make(chan struct{})}
	opts.Address, opts.Node = addr, node
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Apply = func(_ context.Context, b xds.Bundle) (string, error) {
		if reject != nil {
			if err := reject(b); err != nil {
				r.applied.add("error:" + b.Revision)
				return "", err
			}
		}
		r.applied.add(b.Revision)
		return b.Revision, nil
	}
	r.sub = xds.NewSubscriber(opts)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); _ = r.sub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func is[T comparable](want T) func(T) bool { return func(v T) bool { return v == want } }

func TestPolicyPropagatesToReplicas(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "authz.rego"), policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir, Validate: compileCheck})
	a := startReplica(t, cp.addr, "writ-replica-a", nil, xds.SubscriberOptions{})
	b := startReplica(t, cp.addr, "writ-replica-b", nil, xds.SubscriberOptions{})
	a.applied.wait(t, "first revision on a", is(r1))
	b.applied.wait(t, "first revision on b", is(r1))

	writeFile(t, filepath.Join(dir, "authz.rego"), policy(2))
	r2 := revisionOf(t, dir)
	a.applied.wait(t, "new revision on a", is(r2))
	b.applied.wait(t, "new revision on b", is(r2))
	for _, node := range []string{"writ-replica-a", "writ-replica-b"} {
		cp.events.wait(t, "ACK of "+r2+" from "+node, func(e xds.Event) bool {
			return e.Kind == xds.ACK && e.Node == node && e.Version == r2 && e.TypeURL == xds.BundleType
		})
	}
	if got := cp.srv.Versions()["cluster:"+xds.ReplicaCluster]; got != r2 {
		t.Errorf("Versions()[replicas] = %q, want %q", got, r2)
	}
	if got := a.sub.Version(); got != r2 {
		t.Errorf("subscriber Version() = %q, want %q", got, r2)
	}
}

func TestRejectedPolicyKeepsLastGood(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.rego")
	writeFile(t, path, policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir, Validate: compileCheck})
	rep := startReplica(t, cp.addr, "writ-replica-a", nil, xds.SubscriberOptions{})
	rep.applied.wait(t, "first revision", is(r1))

	writeFile(t, path, "package writ.authz\nbroken\n")
	ev := cp.events.wait(t, "rejected policy", func(e xds.Event) bool { return e.Kind == xds.Rejected })
	if ev.Source != "policy" || ev.Err == nil || !strings.Contains(ev.Err.Error(), "rego_parse_error: unexpected broken") {
		t.Errorf("rejection = %+v, want source policy with the compile error", ev)
	}
	if got := counter(t, cp.reg, "writ_xds_rejected_updates_total", "source", "policy"); got != 1 {
		t.Errorf("writ_xds_rejected_updates_total{source=policy} = %v, want 1", got)
	}
	if !strings.Contains(cp.logs.String(), "rego_parse_error: unexpected broken") {
		t.Errorf("the log does not carry the compile error:\n%s", cp.logs.String())
	}
	if got := cp.srv.Versions()["cluster:"+xds.ReplicaCluster]; got != r1 {
		t.Errorf("serving %q after a rejected edit, want %q", got, r1)
	}

	writeFile(t, path, policy(3))
	r3 := revisionOf(t, dir)
	rep.applied.wait(t, "fixed revision", is(r3))
	if got, want := rep.applied.list(), []string{r1, r3}; !equal(got, want) {
		t.Errorf("replica applied %v, want %v (the broken edit never reached it)", got, want)
	}
}

func TestUnchangedPolicyPushesNothing(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.rego")
	writeFile(t, path, policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir})
	rep := startReplica(t, cp.addr, "writ-replica-a", nil, xds.SubscriberOptions{})
	rep.applied.wait(t, "first revision", is(r1))
	cp.events.wait(t, "first ACK", func(e xds.Event) bool { return e.Kind == xds.ACK && e.Version == r1 })

	writeFile(t, path, policy(1)) // same bytes, new mtime
	cp.events.wait(t, "unchanged", func(e xds.Event) bool { return e.Kind == xds.Unchanged && e.Source == "policy" && e.Version == r1 })
	writeFile(t, path, policy(2))
	r2 := revisionOf(t, dir)
	rep.applied.wait(t, "second revision", is(r2))
	// The replica can apply r2 before the control plane reports publishing it.
	cp.events.wait(t, "second publish", func(e xds.Event) bool { return e.Kind == xds.Published && e.Source == "policy" && e.Version == r2 })
	if got, want := rep.applied.list(), []string{r1, r2}; !equal(got, want) {
		t.Errorf("replica applied %v, want %v: an unchanged file pushed a bundle", got, want)
	}
	published := 0
	for _, e := range cp.events.list() {
		if e.Kind == xds.Published {
			published++
		}
	}
	if published != 2 {
		t.Errorf("%d Published events, want 2", published)
	}
}

// TestNACKIsNotRepeated drives a raw state-of-the-world client that
// rejects what it is sent: the version it rejected must not come back.
func TestNACKIsNotRepeated(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.rego")
	writeFile(t, path, policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir})
	st := sotwStream(t, cp.addr)
	node := &core.Node{Id: "writ-replica-nack", Cluster: xds.ReplicaCluster}
	send(t, st, &discovery.DiscoveryRequest{Node: node, TypeUrl: xds.BundleType, ResourceNames: []string{xds.BundleName}})
	resp := recv(t, st)
	if resp.GetVersionInfo() != r1 {
		t.Fatalf("first response version %q, want %q", resp.GetVersionInfo(), r1)
	}
	send(t, st, &discovery.DiscoveryRequest{
		TypeUrl: xds.BundleType, ResourceNames: []string{xds.BundleName}, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &status.Status{Code: 3, Message: "authz.rego:3: rego_type_error: conflicting rules"},
	})
	ev := cp.events.wait(t, "NACK", func(e xds.Event) bool { return e.Kind == xds.NACK })
	if ev.Version != r1 || ev.Node != node.Id || !strings.Contains(ev.Err.Error(), "conflicting rules") {
		t.Errorf("NACK event %+v, want version %s from %s with the error detail", ev, r1, node.Id)
	}

	// Publish a new revision. Without the guard the rejected version is
	// re-sent at once, before it, again and again.
	writeFile(t, path, policy(2))
	r2 := revisionOf(t, dir)
	repeats := 0
	for {
		resp := recv(t, st)
		if resp.GetVersionInfo() == r2 {
			break
		}
		repeats++
		if repeats > 2 {
			t.Fatalf("version %s re-sent %d times after its NACK", resp.GetVersionInfo(), repeats)
		}
		send(t, st, &discovery.DiscoveryRequest{TypeUrl: xds.BundleType, ResourceNames: []string{xds.BundleName}, ResponseNonce: resp.GetNonce(),
			ErrorDetail: &status.Status{Code: 3, Message: "again"}})
	}
	if repeats != 0 {
		t.Errorf("the rejected version came back %d times before the next one", repeats)
	}
	if got := counter(t, cp.reg, "writ_xds_nacks_total", "type", xds.BundleType); got != 1 {
		t.Errorf("writ_xds_nacks_total = %v, want 1", got)
	}
	if n := strings.Count(cp.logs.String(), "node rejected a version"); n != 1 {
		t.Errorf("NACK logged %d times, want once", n)
	}
}

// TestSubscriberNACKsAndKeepsLastGood: a bundle the replica cannot compile
// is NACKed with the error, the last good stays, and the next one applies.
func TestSubscriberNACKsAndKeepsLastGood(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.rego")
	writeFile(t, path, policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir}) // no Validate: the replica decides
	rep := startReplica(t, cp.addr, "writ-replica-a", func(b xds.Bundle) error { return compileCheck(context.Background(), b) }, xds.SubscriberOptions{})
	rep.applied.wait(t, "first revision", is(r1))

	writeFile(t, path, "package writ.authz\nbroken\n")
	rBad := revisionOf(t, dir)
	rep.applied.wait(t, "failed apply", is("error:"+rBad))
	ev := cp.events.wait(t, "NACK", func(e xds.Event) bool { return e.Kind == xds.NACK })
	if ev.Version != rBad || !strings.Contains(ev.Err.Error(), "rego_parse_error: unexpected broken") {
		t.Errorf("NACK %+v, want version %s with the compile error", ev, rBad)
	}
	if got := rep.sub.Version(); got != r1 {
		t.Errorf("subscriber serves %q after the NACK, want %q", got, r1)
	}

	writeFile(t, path, policy(3))
	r3 := revisionOf(t, dir)
	rep.applied.wait(t, "next revision", is(r3))
	if got, want := rep.applied.list(), []string{r1, "error:" + rBad, r3}; !equal(got, want) {
		t.Errorf("replica saw %v, want %v (each version once)", got, want)
	}
}

// TestSubscriberReconnects: the control plane goes away, the replica keeps
// its policy and backs off; a new control plane on the same address is
// followed after the backoff.
func TestSubscriberReconnects(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.rego")
	writeFile(t, path, policy(1))
	r1 := revisionOf(t, dir)
	cp := startControlPlane(t, "", xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir})
	waits := make(chan time.Duration, 16)
	release := make(chan time.Time)
	rep := startReplica(t, cp.addr, "writ-replica-a", nil, xds.SubscriberOptions{
		BackoffMin: time.Second, BackoffMax: 4 * time.Second,
		After: func(d time.Duration) <-chan time.Time { waits <- d; return release },
	})
	rep.applied.wait(t, "first revision", is(r1))

	cp.stop()
	var d time.Duration
	select {
	case d = <-waits:
	case <-time.After(waitFor):
		t.Fatal("the subscriber did not notice the control plane going away")
	}
	if d < 500*time.Millisecond || d > time.Second {
		t.Errorf("first backoff %v, want within [0.5s, 1s]", d)
	}
	if got := rep.sub.Version(); got != r1 {
		t.Errorf("version %q while disconnected, want %q", got, r1)
	}

	writeFile(t, path, policy(2))
	r2 := revisionOf(t, dir)
	startControlPlane(t, cp.addr, xds.ServerOptions{Bundle: readRego(dir), BundleDir: dir})
	// Release every wait until the subscriber is back.
	stopReleasing := make(chan struct{})
	releaseDone := make(chan struct{})
	go func() {
		defer close(releaseDone)
		for {
			select {
			case release <- time.Now():
			case <-waits:
			case <-stopReleasing:
				return
			}
		}
	}()
	rep.applied.wait(t, "revision from the new control plane", is(r2))
	close(stopReleasing)
	<-releaseDone
}

// TestDeltaADSGetsTheSameResources: a delta client and a state-of-the-world
// client of the same node get the same listener and the same bundle.
func TestDeltaADSGetsTheSameResources(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "authz.rego"), policy(1))
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	copyFile(t, "testdata/grpc-client.yaml", mesh)
	cp := startControlPlane(t, "", xds.ServerOptions{MeshPath: mesh, Bundle: readRego(dir), BundleDir: dir})
	node := &core.Node{Id: "grpc-client-1", Cluster: "c"}

	for _, typeURL := range []string{resource.ListenerType, xds.BundleType} {
		st := sotwStream(t, cp.addr)
		send(t, st, &discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL})
		sotw := recv(t, st)

		conn := dial(t, cp.addr)
		ds, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNamesSubscribe: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		delta, err := ds.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(sotw.GetResources()) == 0 || len(delta.GetResources()) != len(sotw.GetResources()) {
			t.Fatalf("%s: delta got %d resources, sotw %d", typeURL, len(delta.GetResources()), len(sotw.GetResources()))
		}
		for i, r := range delta.GetResources() {
			if !proto.Equal(r.GetResource(), sotw.GetResources()[i]) {
				t.Errorf("%s: delta resource %q differs from the state-of-the-world one", typeURL, r.GetName())
			}
		}
		if typeURL == resource.ListenerType {
			var l listener.Listener
			if err := delta.GetResources()[0].GetResource().UnmarshalTo(&l); err != nil || l.GetName() != "echo.test" {
				t.Errorf("delta listener %q (%v), want echo.test", l.GetName(), err)
			}
		} else if delta.GetResources()[0].GetName() != xds.BundleName {
			t.Errorf("delta bundle named %q, want %q", delta.GetResources()[0].GetName(), xds.BundleName)
		}
		if err := ds.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: delta.GetNonce(),
			ErrorDetail: &status.Status{Code: 3, Message: "delta rejects"}}); err != nil {
			t.Fatal(err)
		}
		cp.events.wait(t, "delta NACK", func(e xds.Event) bool { return e.Kind == xds.NACK && e.TypeURL == typeURL })
	}
}

// TestMeshRejectedKeepsLastGood: a broken mesh edit is rejected and
// counted; the listener served does not change until a valid edit.
func TestMeshRejectedKeepsLastGood(t *testing.T) {
	noLeaks(t)
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	copyFile(t, "testdata/grpc-client.yaml", mesh)
	cp := startControlPlane(t, "", xds.ServerOptions{MeshPath: mesh})
	node := &core.Node{Id: "grpc-client-1"}
	st := sotwStream(t, cp.addr)
	send(t, st, &discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType})
	first := recv(t, st)
	send(t, st, &discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()})

	writeFile(t, mesh, "grpc_services:\n  - name: echo.test\n    nodes: oops\n")
	ev := cp.events.wait(t, "rejected mesh", func(e xds.Event) bool { return e.Kind == xds.Rejected })
	if ev.Source != "mesh" || ev.Err == nil || !strings.Contains(ev.Err.Error(), "nodes") {
		t.Errorf("rejection %+v, want source mesh naming the bad key", ev)
	}
	if got := counter(t, cp.reg, "writ_xds_rejected_updates_total", "source", "mesh"); got != 1 {
		t.Errorf("writ_xds_rejected_updates_total{source=mesh} = %v, want 1", got)
	}
	if got := cp.srv.Versions()["grpc-client-1"]; got != first.GetVersionInfo() {
		t.Errorf("serving %q after a rejected edit, want %q", got, first.GetVersionInfo())
	}

	writeFile(t, mesh, strings.Replace(readFile(t, "testdata/grpc-client.yaml"), "50051", "50052", 1))
	next := recv(t, st)
	if next.GetVersionInfo() == first.GetVersionInfo() {
		t.Errorf("the valid edit was pushed with the old version %q", next.GetVersionInfo())
	}
}

func TestNewServerOptions(t *testing.T) {
	bundle := func(context.Context) (xds.Bundle, error) { return xds.Bundle{}, nil }
	for _, tc := range []struct {
		name string
		opts xds.ServerOptions
	}{
		{"nothing to serve", xds.ServerOptions{}},
		{"directory without reader", xds.ServerOptions{MeshPath: "m.yaml", BundleDir: "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := xds.NewServer(tc.opts); !errors.Is(err, xds.ErrOptions) {
				t.Errorf("err = %v, want ErrOptions", err)
			}
		})
	}
	if _, err := xds.NewServer(xds.ServerOptions{Bundle: bundle}); err != nil {
		t.Errorf("policy-only server: %v", err)
	}
}

func TestServeFailsOnBadStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts xds.ServerOptions
		want string
	}{
		{"missing mesh", xds.ServerOptions{MeshPath: filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{"policy does not compile", xds.ServerOptions{
			Bundle: func(context.Context) (xds.Bundle, error) {
				return xds.Bundle{Modules: map[string]string{"a.rego": "broken"}}, nil
			},
			Validate: compileCheck,
		}, "unexpected broken"},
		{"bad module name", xds.ServerOptions{
			Bundle: func(context.Context) (xds.Bundle, error) {
				return xds.Bundle{Modules: map[string]string{"../a.rego": ""}}, nil
			},
		}, "leaves the policy directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := xds.NewServer(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			err = srv.Serve(t.Context(), ln)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Serve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// counter reads one counter from reg (0 when it was never incremented).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// noLeaks checks, after every other cleanup, that the test left no goroutine.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func sotwStream(t *testing.T, addr string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, addr)).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func send(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, req *discovery.DiscoveryRequest) {
	t.Helper()
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discovery.DiscoveryResponse {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func copyFile(t *testing.T, from, to string) { t.Helper(); writeFile(t, to, readFile(t, from)) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func writeFileErr(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
