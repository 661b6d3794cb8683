package xds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// ReplicaCluster is the node cluster writ replicas announce. Every replica,
// whatever its node id (by default "writ-replica-" and the host name),
// shares the snapshot keyed "cluster:writ-replicas", which holds only the
// policy bundle. A mesh file may not use this name for its own nodes.
const ReplicaCluster = "writ-replicas"

// replicaKey is the snapshot key of writ replicas.
const replicaKey = "cluster:" + ReplicaCluster

// DefaultDebounce is how long the watcher waits after the last file event
// before it rebuilds.
const DefaultDebounce = 200 * time.Millisecond

// ServerOptions configure a Server. At least one of MeshPath and Bundle is
// required.
type ServerOptions struct {
	// MeshPath is the mesh file the Envoy resources are built from. Empty
	// means policy only: no Envoy resources are served.
	MeshPath string
	// Bundle reads the current policy bundle (the policy directory).
	// A Bundle with an empty Revision gets BundleRevision's. Nil means no
	// policy is published.
	Bundle func(ctx context.Context) (Bundle, error)
	// BundleDir is watched: a change under it calls Bundle again. Empty
	// means the bundle is read once.
	BundleDir string
	// Validate compiles a bundle before it is published; an error rejects
	// it and the last good bundle keeps serving. Nil publishes any bundle
	// whose shape is valid, leaving each replica to NACK what it cannot
	// compile.
	Validate func(ctx context.Context, b Bundle) error
	// Debounce is the quiet time after file events before a rebuild.
	// Default DefaultDebounce.
	Debounce time.Duration
	// Notify, when set, is called for every published update, rejected
	// or unchanged update, ACK and NACK. It must not block.
	Notify func(Event)
	// Logger receives the server's log lines. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// Published: a new mesh version or policy revision is being served.
	Published EventKind = iota + 1
	// Rejected: an edit was rejected; the last good one keeps serving.
	Rejected
	// ACK: a node accepted a version.
	ACK
	// NACK: a node rejected a version.
	NACK
	// Unchanged: an edit left the built version as it was; nothing pushed.
	Unchanged
)

func (k EventKind) String() string {
	switch k {
	case Published:
		return "published"
	case Rejected:
		return "rejected"
	case ACK:
		return "ack"
	case NACK:
		return "nack"
	case Unchanged:
		return "unchanged"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one update, rejection, ACK or NACK.
type Event struct {
	Kind EventKind
	// Source is "mesh" or "policy" for Published and Rejected.
	Source string
	// Node is the node id, TypeURL the resource type, for ACK and NACK.
	Node, TypeURL string
	// Version is the version published, acknowledged or rejected.
	Version string
	// Err is the rejection: the build or compile error, or a node's
	// error_detail.
	Err error
}

// Server is writ's ADS control plane: per-node Envoy snapshots built from
// the mesh file, and the policy bundle for writ replicas.
type Server struct {
	opts     ServerOptions
	log      *slog.Logger
	cache    cache.SnapshotCache
	keys     atomic.Pointer[map[string]bool] // snapshot keys named by node id
	rejected *prometheus.CounterVec
	nacks    *prometheus.CounterVec

	mu       sync.Mutex // guards what follows; held while publishing
	envoy    map[string]*cache.Snapshot
	versions map[string]string // key → NodeConfig.Version
	bundle   *Bundle
	served   map[string]bool // keys with a snapshot set

	streams sync.Map // stream id → *streamState
	nacked  nackLog
}

type streamState struct {
	mu   sync.Mutex
	sent map[string]string // type URL → version last sent
}

// NewServer checks opts and returns a Server; Serve starts it.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.MeshPath == "" && opts.Bundle == nil {
		return nil, fmt.Errorf("%w: neither a mesh file nor a policy bundle", ErrOptions)
	}
	if opts.BundleDir != "" && opts.Bundle == nil {
		return nil, fmt.Errorf("%w: a bundle directory without a bundle reader", ErrOptions)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		opts: opts,
		log:  opts.Logger,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_xds_rejected_updates_total",
			Help: "Edits of the mesh file or the policy directory rejected by the control plane; the last good version keeps serving.",
		}, []string{"source"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_xds_nacks_total",
			Help: "xDS responses rejected by a node (a request carrying error_detail), by resource type.",
		}, []string{"type"}),
		envoy:  map[string]*cache.Snapshot{},
		served: map[string]bool{},
	}
	s.keys.Store(&map[string]bool{})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.rejected, s.nacks} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("%w: metrics: %w", ErrOptions, err)
			}
		}
	}
	s.cache = cache.NewSnapshotCache(true, nodeHash{&s.keys}, cacheLogger{s.log})
	return s, nil
}

// Serve loads the mesh file and the bundle (an error in either is returned:
// there is no last good version yet), serves ADS on ln, and watches the
// files until ctx ends. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	if s.opts.MeshPath != "" {
		if err := s.reloadMesh(ctx); err != nil {
			return err
		}
	}
	if s.opts.Bundle != nil {
		if err := s.reloadBundle(ctx); err != nil {
			return err
		}
	}
	watcher, err := s.watch()
	if err != nil {
		return err
	}
	defer watcher.Close()

	g := grpc.NewServer()
	cw, cb := nackGuard{s.cache}, callbacks{s}
	discovery.RegisterAggregatedDiscoveryServiceServer(g, &adsService{
		sotw:  sotw.NewServer(ctx, cw, cb),
		delta: delta.NewServer(ctx, cw, cb),
	})

	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.Serve(ln) })
	eg.Go(func() error { return s.watchLoop(ectx, watcher) })
	eg.Go(func() error {
		<-ectx.Done()
		g.Stop() // ADS streams never end by themselves: do not wait for them
		return nil
	})
	err = eg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Versions returns the version served to each snapshot key: the mesh
// version for Envoy nodes, the policy revision for writ replicas.
func (s *Server) Versions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.versions)
	if out == nil {
		out = map[string]string{}
	}
	if s.bundle != nil {
		out[replicaKey] = s.bundle.Revision
	}
	return out
}

// reloadMesh builds the mesh file into snapshots and publishes the ones
// that changed. On error nothing changes.
func (s *Server) reloadMesh(ctx context.Context) error {
	snaps, versions, err := s.buildMesh()
	if err != nil {
		s.reject(ctx, "mesh", "", err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if maps.Equal(versions, s.versions) {
		s.log.DebugContext(ctx, "mesh unchanged", "mesh", s.opts.MeshPath)
		s.notify(Event{Kind: Unchanged, Source: "mesh", Version: meshVersion(versions)})
		return nil
	}
	keys := map[string]bool{}
	for key := range snaps {
		if !strings.HasPrefix(key, "cluster:") {
			keys[key] = true
		}
	}
	s.keys.Store(&keys)
	s.envoy, s.versions = snaps, versions
	if err := s.publishLocked(ctx); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "mesh published", "mesh", s.opts.MeshPath, "nodes", versions)
	s.notify(Event{Kind: Published, Source: "mesh", Version: meshVersion(versions)})
	return nil
}

func (s *Server) buildMesh() (map[string]*cache.Snapshot, map[string]string, error) {
	m, err := LoadMesh(s.opts.MeshPath)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := Build(m)
	if err != nil {
		return nil, nil, err
	}
	snaps := make(map[string]*cache.Snapshot, len(nodes))
	versions := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.Node == replicaKey {
			return nil, nil, fmt.Errorf("mesh: node %q is reserved for writ replicas", n.Node)
		}
		if _, dup := snaps[n.Node]; dup {
			return nil, nil, fmt.Errorf("mesh: node %q is built twice", n.Node)
		}
		snap, err := n.Snapshot()
		if err != nil {
			return nil, nil, fmt.Errorf("mesh: node %q: %w", n.Node, err)
		}
		snaps[n.Node], versions[n.Node] = snap, n.Version()
	}
	return snaps, versions, nil
}

// meshVersion summarises per-node versions for an Event.
func meshVersion(versions map[string]string) string {
	if len(versions) == 1 {
		for _, v := range versions {
			return v
		}
	}
	var b strings.Builder
	for i, key := range sortedKeys(versions) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(key + "=" + versions[key])
	}
	return b.String()
}

// reloadBundle reads, checks and compiles the bundle, and publishes it when
// its revision changed. On error nothing changes.
func (s *Server) reloadBundle(ctx context.Context) error {
	b, err := s.opts.Bundle(ctx)
	if err == nil {
		b = b.withRevision()
		err = b.Validate()
	}
	if err == nil && s.opts.Validate != nil {
		err = s.opts.Validate(ctx, b)
	}
	if err != nil {
		s.reject(ctx, "policy", b.Revision, err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundle != nil && s.bundle.Revision == b.Revision {
		s.log.DebugContext(ctx, "policy unchanged", "revision", b.Revision)
		s.notify(Event{Kind: Unchanged, Source: "policy", Version: b.Revision})
		return nil
	}
	previous := ""
	if s.bundle != nil {
		previous = s.bundle.Revision
	}
	s.bundle = &b
	if err := s.publishLocked(ctx); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "policy published", "revision", b.Revision, "previous_revision", previous, "modules", len(b.Modules))
	s.notify(Event{Kind: Published, Source: "policy", Version: b.Revision})
	return nil
}

func (s *Server) reject(ctx context.Context, source, version string, err error) {
	s.rejected.WithLabelValues(source).Inc()
	s.log.ErrorContext(ctx, "update rejected; the last good version keeps serving", "source", source, "error", err)
	s.notify(Event{Kind: Rejected, Source: source, Version: version, Err: err})
}

// publishLocked sets every key's snapshot from s.envoy and s.bundle. The
// cache pushes only types whose version changed. s.mu is held.
func (s *Server) publishLocked(ctx context.Context) error {
	var bundle map[string]types.ResourceWithTTL
	bundleVersion := ""
	if s.bundle != nil {
		bundle = map[string]types.ResourceWithTTL{BundleName: {Resource: s.bundle.message()}}
		bundleVersion = s.bundle.Revision
	}
	want := map[string]bool{replicaKey: true}
	for key := range s.envoy {
		want[key] = true
	}
	for key := range want {
		snap := &nodeSnapshot{envoy: s.envoy[key], bundle: bundle, bundleVersion: bundleVersion}
		if err := snap.ConstructVersionMap(); err != nil {
			return fmt.Errorf("xds: snapshot %q: %w", key, err)
		}
		if err := s.cache.SetSnapshot(ctx, key, snap); err != nil {
			return fmt.Errorf("xds: snapshot %q: %w", key, err)
		}
	}
	for key := range s.served {
		if !want[key] {
			s.cache.ClearSnapshot(key)
		}
	}
	s.served = want
	return nil
}

func (s *Server) notify(ev Event) {
	if s.opts.Notify != nil {
		s.opts.Notify(ev)
	}
}

// watch starts an fsnotify watcher on the mesh file's folder (editors
// replace files by renaming) and on the bundle directory's tree.
func (s *Server) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("xds: watch: %w", err)
	}
	if s.opts.MeshPath != "" {
		if err := w.Add(filepath.Dir(s.opts.MeshPath)); err != nil {
			w.Close()
			return nil, fmt.Errorf("xds: watch %s: %w", s.opts.MeshPath, err)
		}
	}
	if s.opts.BundleDir != "" {
		if err := watchTree(w, s.opts.BundleDir); err != nil {
			w.Close()
			return nil, fmt.Errorf("xds: watch %s: %w", s.opts.BundleDir, err)
		}
	}
	return w, nil
}

// watchLoop rebuilds, after Debounce of quiet, whatever changed.
func (s *Server) watchLoop(ctx context.Context, w *fsnotify.Watcher) error {
	meshFile := filepath.Clean(s.opts.MeshPath)
	bundleDir := filepath.Clean(s.opts.BundleDir)
	timer := time.NewTimer(s.opts.Debounce)
	timer.Stop()
	defer timer.Stop()
	var meshDirty, bundleDirty bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name := filepath.Clean(ev.Name)
			switch {
			case s.opts.MeshPath != "" && name == meshFile:
				meshDirty = true
			case s.opts.BundleDir != "" && (name == bundleDir || strings.HasPrefix(name, bundleDir+string(filepath.Separator))):
				if ev.Op == fsnotify.Chmod {
					continue
				}
				if ev.Has(fsnotify.Create) {
					if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
						if err := watchTree(w, ev.Name); err != nil {
							s.log.WarnContext(ctx, "policy watch: cannot watch new folder", "dir", ev.Name, "error", err)
						}
					}
				}
				bundleDirty = true
			default:
				continue
			}
			timer.Reset(s.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// Events may have been lost: rebuild both to be sure.
			s.log.WarnContext(ctx, "xds watch error", "error", err)
			meshDirty, bundleDirty = s.opts.MeshPath != "", s.opts.BundleDir != ""
			timer.Reset(s.opts.Debounce)
		case <-timer.C:
			if meshDirty {
				_ = s.reloadMesh(ctx) // logged and counted
			}
			if bundleDirty {
				_ = s.reloadBundle(ctx)
			}
			meshDirty, bundleDirty = false, false
		}
	}
}

// watchTree watches dir and every folder below it, skipping hidden ones.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		return w.Add(p)
	})
}

// adsService serves ADS: state-of-the-world and delta streams of any
// resource type.
type adsService struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	sotw  sotw.Server
	delta delta.Server
}

func (a *adsService) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.sotw.StreamHandler(st, resource.AnyType)
}

func (a *adsService) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.delta.DeltaStreamHandler(st, resource.AnyType)
}

// callbacks notice ACKs and NACKs on both protocols.
type callbacks struct{ s *Server }

var (
	_ sotw.Callbacks  = callbacks{}
	_ delta.Callbacks = callbacks{}
)

func (c callbacks) OnStreamOpen(_ context.Context, id int64, _ string) error {
	c.s.streams.Store(id, &streamState{sent: map[string]string{}})
	return nil
}

func (c callbacks) OnStreamClosed(id int64, _ *core.Node) { c.s.streams.Delete(id) }

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	if st, ok := c.s.streams.Load(id); ok {
		st := st.(*streamState)
		st.mu.Lock()
		st.sent[resp.GetTypeUrl()] = resp.GetVersionInfo()
		st.mu.Unlock()
	}
}

func (c callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	if req.GetResponseNonce() == "" {
		return nil // a first request: neither ACK nor NACK
	}
	if req.GetErrorDetail() == nil {
		c.s.notify(Event{Kind: ACK, Node: req.GetNode().GetId(), TypeURL: req.GetTypeUrl(), Version: req.GetVersionInfo()})
		return nil
	}
	version := ""
	if st, ok := c.s.streams.Load(id); ok {
		st := st.(*streamState)
		st.mu.Lock()
		version = st.sent[req.GetTypeUrl()]
		st.mu.Unlock()
	}
	c.s.nack(req.GetNode().GetId(), req.GetTypeUrl(), version, req.GetErrorDetail().GetMessage())
	return nil
}

func (c callbacks) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }
func (c callbacks) OnDeltaStreamClosed(int64, *core.Node)                  {}
func (c callbacks) OnStreamDeltaResponse(int64, *discovery.DeltaDiscoveryRequest, *discovery.DeltaDiscoveryResponse) {
}

func (c callbacks) OnStreamDeltaRequest(_ int64, req *discovery.DeltaDiscoveryRequest) error {
	if req.GetResponseNonce() != "" && req.GetErrorDetail() != nil { // a delta ACK names no version
		c.s.nack(req.GetNode().GetId(), req.GetTypeUrl(), "", req.GetErrorDetail().GetMessage())
	}
	return nil
}

// nack counts a NACK and logs it once per node, type, version and error.
func (s *Server) nack(node, typeURL, version, detail string) {
	s.nacks.WithLabelValues(typeURL).Inc()
	if s.nacked.first(node + "\x00" + typeURL + "\x00" + version + "\x00" + detail) {
		s.log.Error("node rejected a version; it keeps its last good one", "node", node, "type", typeURL, "version", version, "error_detail", detail)
	}
	s.notify(Event{Kind: NACK, Node: node, TypeURL: typeURL, Version: version, Err: errors.New(detail)})
}

// nackLog remembers which NACKs were logged, up to a bound.
type nackLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *nackLog) first(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[key] {
		return false
	}
	if l.seen == nil || len(l.seen) >= 10000 {
		l.seen = map[string]bool{}
	}
	l.seen[key] = true
	return true
}

// nackGuard keeps a state-of-the-world NACK from being answered with the
// version just rejected. go-control-plane's snapshot cache compares a
// request's version_info with the snapshot's; a NACK carries the last good
// version, so the cache would re-send the rejected version at once, and the
// node would NACK it again, in a tight loop. For a NACK, the guard asks the
// cache as if the node held the rejected version (the version of the
// resources last returned on the stream), so the watch stays open until a
// new version is published. Delta needs no guard: its state follows what
// was sent, not what was acknowledged.
type nackGuard struct{ cache.SnapshotCache }

func (g nackGuard) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		for _, version := range sub.ReturnedResources() {
			if version != req.GetVersionInfo() {
				req = proto.Clone(req).(*discovery.DiscoveryRequest)
				req.VersionInfo = version
			}
			break // every resource of a state-of-the-world response has its version
		}
	}
	return g.SnapshotCache.CreateWatch(req, sub, out)
}

// nodeHash keys a node by its id when the mesh built a snapshot for that
// id, and by "cluster:" and its cluster otherwise.
type nodeHash struct {
	keys *atomic.Pointer[map[string]bool]
}

func (h nodeHash) ID(node *core.Node) string {
	if node == nil {
		return ""
	}
	if (*h.keys.Load())[node.GetId()] {
		return node.GetId()
	}
	return "cluster:" + node.GetCluster()
}

// nodeSnapshot is one key's snapshot: the Envoy resources built from the
// mesh (possibly none) and the policy bundle (possibly none), each type
// with its own version, so a policy change pushes no Envoy resource and a
// mesh change no bundle.
type nodeSnapshot struct {
	envoy         *cache.Snapshot
	bundle        map[string]types.ResourceWithTTL
	bundleVersion string
}

var _ cache.ResourceSnapshot = (*nodeSnapshot)(nil)

func (n *nodeSnapshot) GetVersion(typeURL string) string {
	if typeURL == BundleType {
		return n.bundleVersion
	}
	if n.envoy == nil {
		return ""
	}
	return n.envoy.GetVersion(typeURL)
}

func (n *nodeSnapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	if typeURL == BundleType {
		return n.bundle
	}
	if n.envoy == nil {
		return nil
	}
	return n.envoy.GetResourcesAndTTL(typeURL)
}

func (n *nodeSnapshot) GetResources(typeURL string) map[string]types.Resource {
	if typeURL == BundleType {
		out := make(map[string]types.Resource, len(n.bundle))
		for name, r := range n.bundle {
			out[name] = r.Resource
		}
		return out
	}
	if n.envoy == nil {
		return nil
	}
	return n.envoy.GetResources(typeURL)
}

// ConstructVersionMap prepares the per-resource versions delta needs. It
// is called once, before the snapshot is shared.
func (n *nodeSnapshot) ConstructVersionMap() error {
	if n.envoy == nil {
		return nil
	}
	return n.envoy.ConstructVersionMap()
}

func (n *nodeSnapshot) GetVersionMap(typeURL string) map[string]string {
	if typeURL == BundleType {
		out := make(map[string]string, len(n.bundle))
		for name := range n.bundle {
			out[name] = n.bundleVersion
		}
		return out
	}
	if n.envoy == nil {
		return nil
	}
	return n.envoy.GetVersionMap(typeURL)
}

// cacheLogger sends go-control-plane's log lines to slog.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(format string, args ...any) { c.l.Debug(fmt.Sprintf(format, args...)) }
func (c cacheLogger) Infof(format string, args ...any)  { c.l.Debug(fmt.Sprintf(format, args...)) }
func (c cacheLogger) Warnf(format string, args ...any)  { c.l.Warn(fmt.Sprintf(format, args...)) }
func (c cacheLogger) Errorf(format string, args ...any) { c.l.Error(fmt.Sprintf(format, args...)) }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
