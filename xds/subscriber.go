package xds

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// Default reconnection backoff of a Subscriber.
const (
	DefaultBackoffMin = 250 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// SubscriberOptions configure a Subscriber.
type SubscriberOptions struct {
	// Address is the control plane's ADS address, host:port.
	Address string
	// Node is the node id announced. Default "writ-replica-" and the host name.
	Node string
	// Cluster is the node cluster announced. Default ReplicaCluster.
	Cluster string
	// Apply compiles a bundle and swaps it in, returning the revision now
	// serving. An error is sent back as a NACK and the last good policy
	// keeps serving.
	Apply func(ctx context.Context, b Bundle) (revision string, err error)
	// Logger receives the subscriber's log lines. Default slog.Default().
	Logger *slog.Logger
	// BackoffMin and BackoffMax bound the wait between reconnections,
	// which doubles per failed attempt, with jitter. Defaults
	// DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// After waits for a duration; default time.After. Tests replace it.
	After func(time.Duration) <-chan time.Time
	// DialOptions are added to the gRPC dial (default: plaintext).
	DialOptions []grpc.DialOption
}

// Subscriber is a writ replica's side of the policy stream: it follows the
// control plane's bundle, applying each new revision, and keeps the last
// good one when a revision does not compile or the control plane is away.
type Subscriber struct {
	opts SubscriberOptions
	log  *slog.Logger

	mu      sync.Mutex
	version string // the last version ACKed
}

// NewSubscriber returns a Subscriber; Run starts it.
func NewSubscriber(opts SubscriberOptions) *Subscriber {
	if opts.Node == "" {
		host, _ := os.Hostname()
		opts.Node = "writ-replica-" + host
	}
	if opts.Cluster == "" {
		opts.Cluster = ReplicaCluster
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffMin)
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if len(opts.DialOptions) == 0 {
		opts.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Subscriber{opts: opts, log: opts.Logger}
}

// Version returns the last bundle version acknowledged ("" before the first).
func (s *Subscriber) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Run follows the control plane until ctx ends (then it returns nil),
// reconnecting with capped exponential backoff and jitter whenever the
// stream breaks. Only a dial that cannot be set up at all is returned.
func (s *Subscriber) Run(ctx context.Context) error {
	if s.opts.Apply == nil {
		return fmt.Errorf("%w: subscriber without Apply", ErrOptions)
	}
	conn, err := grpc.NewClient(s.opts.Address, s.opts.DialOptions...)
	if err != nil {
		return fmt.Errorf("xds: control plane %s: %w", s.opts.Address, err)
	}
	defer conn.Close()
	client := discovery.NewAggregatedDiscoveryServiceClient(conn)
	attempt := 0
	for {
		progressed, err := s.stream(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			attempt = 0
		}
		wait := backoff(s.opts.BackoffMin, s.opts.BackoffMax, attempt)
		attempt++
		s.log.WarnContext(ctx, "control plane stream ended; the last good policy keeps serving",
			"address", s.opts.Address, "version", s.Version(), "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.After(wait):
		}
	}
}

// backoff is min·2^attempt capped at max, with up to half taken off at
// random so replicas do not reconnect in step.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 32 && lo<<attempt < hi && lo<<attempt > 0 {
		d = lo << attempt
	}
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

// stream runs one ADS stream; progressed says whether a response arrived.
func (s *Subscriber) stream(ctx context.Context, client discovery.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := client.StreamAggregatedResources(ctx, grpc.WaitForReady(false))
	if err != nil {
		return false, err
	}
	node := &core.Node{Id: s.opts.Node, Cluster: s.opts.Cluster}
	if err := st.Send(&discovery.DiscoveryRequest{
		Node: node, TypeUrl: BundleType, ResourceNames: []string{BundleName}, VersionInfo: s.Version(),
	}); err != nil {
		return false, err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return progressed, err
		}
		if !progressed {
			s.log.InfoContext(ctx, "control plane connected", "address", s.opts.Address, "node", s.opts.Node)
		}
		progressed = true
		ack := &discovery.DiscoveryRequest{TypeUrl: BundleType, ResourceNames: []string{BundleName}, ResponseNonce: resp.GetNonce()}
		if err := s.apply(ctx, resp); err != nil {
			s.log.ErrorContext(ctx, "policy bundle rejected; the last good policy keeps serving",
				"version", resp.GetVersionInfo(), "serving_version", s.Version(), "error", err)
			ack.VersionInfo = s.Version()
			ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			s.mu.Lock()
			s.version = resp.GetVersionInfo()
			s.mu.Unlock()
			ack.VersionInfo = resp.GetVersionInfo()
		}
		if err := st.Send(ack); err != nil {
			return progressed, err
		}
	}
}

// apply decodes the response's bundle and hands it to Apply. A response
// with no resources changes nothing.
func (s *Subscriber) apply(ctx context.Context, resp *discovery.DiscoveryResponse) error {
	if resp.GetTypeUrl() != BundleType {
		return fmt.Errorf("%w: response type %q, want %q", ErrBundle, resp.GetTypeUrl(), BundleType)
	}
	switch len(resp.GetResources()) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("%w: %d resources", ErrNoBundle, len(resp.GetResources()))
	}
	b, err := decodeBundle(resp.GetResources()[0])
	if err != nil {
		return err
	}
	rev, err := s.opts.Apply(ctx, b)
	if err != nil {
		return err
	}
	if rev != b.Revision {
		s.log.DebugContext(ctx, "policy revision differs from the bundle's", "bundle_revision", b.Revision, "revision", rev)
	}
	s.log.InfoContext(ctx, "policy bundle applied", "version", resp.GetVersionInfo(), "revision", rev)
	return nil
}
