package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// devAudience is the audience of development tokens (writ dev token).
const devAudience = "urn:writ:dev:audience"

// shutdownGrace bounds how long in-flight Checks may take to finish on SIGTERM.
const shutdownGrace = 10 * time.Second

func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, flags, err := parseServe(args)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Log.Level)
	return serve(ctx, cfg, flags, logger, stdout)
}

// serveFlags are serve's flags that are not configuration keys.
type serveFlags struct {
	dev bool
	xds string // control plane address: the policy comes from there
}

// serveConfig parses serve's flags, loads the file and applies the flags
// over it; the result is validated.
func serveConfig(args []string) (Config, bool, error) {
	cfg, flags, err := parseServe(args)
	return cfg, flags.dev, err
}

func parseServe(args []string) (Config, serveFlags, error) {
	fs := newFlags("serve")
	configPath := fs.String("config", "", "YAML configuration file (default: embedded defaults)")
	grpcAddr := fs.String("grpc", "", "ext_authz gRPC listen address (overrides listen.grpc)")
	httpAddr := fs.String("http", "", "ext_authz HTTP service-mode listen address (overrides listen.http)")
	apiAddr := fs.String("api", "", "API listen address: JWKS, /metrics, /healthz (overrides listen.api)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	policyDir := fs.String("policies", "", "policy directory (overrides policies)")
	dev := fs.Bool("dev", false, "trust the local development issuer (writ dev token); every evidence record says so")
	xdsAddr := fs.String("xds", "", "control plane (writ xds) address: follow its policy bundle instead of a policy directory")
	if err := fs.Parse(args); err != nil {
		return Config{}, serveFlags{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, serveFlags{}, fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, fs.Args())
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return cfg, serveFlags{}, err
	}
	override(&cfg.Listen.GRPC, *grpcAddr)
	override(&cfg.Listen.HTTP, *httpAddr)
	override(&cfg.Listen.API, *apiAddr)
	override(&cfg.DataDir, *dataDir)
	override(&cfg.Policies, *policyDir)
	if err := cfg.Validate(); err != nil {
		return cfg, serveFlags{}, err
	}
	if *xdsAddr != "" {
		if _, _, err := net.SplitHostPort(*xdsAddr); err != nil {
			return cfg, serveFlags{}, fmt.Errorf("%w: --xds %q is not host:port", errUsage, *xdsAddr)
		}
		if cfg.Policies != "" {
			return cfg, serveFlags{}, fmt.Errorf("config: policies (%s) and --xds both name a policy source: with --xds the policy comes only from the control plane; remove the policies key or --policies flag", cfg.Policies)
		}
	}
	return cfg, serveFlags{dev: *dev, xds: *xdsAddr}, nil
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by Config.Validate
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve runs writ until ctx ends, then shuts down in order: stop taking
// Checks, finish the ones in flight, write every pending evidence record.
func serve(ctx context.Context, cfg Config, flags serveFlags, logger *slog.Logger, stdout io.Writer) error {
	dev := flags.dev
	if os.Getenv("GOGC") == "" {
		// writ's live heap is small (caches of identities, decisions and
		// tokens) and its allocation rate high; collecting less often keeps
		// GC work off the Check path's tail latency. GOGC overrides it.
		debug.SetGCPercent(400)
	}
	// Bind first, so port 0 works and the issuer can default to the real address.
	grpcLn, httpLn, apiLn, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer closeAll(grpcLn, httpLn, apiLn)
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + apiLn.Addr().String()
	}

	db, err := store.OpenSQLite(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()

	kek, err := tokens.KeyEncryptionKey(cfg.DataDir)
	if err != nil {
		return err
	}
	// A retired key stays published for a token lifetime after every
	// replica can have noticed the rotation (key_reload), plus a margin.
	keyring, err := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{Algorithm: cfg.Tokens.Algorithm, Retain: cfg.Tokens.MaxTTL + cfg.Tokens.KeyReload + time.Minute})
	if err != nil {
		return err
	}
	minter, err := tokens.NewMinter(keyring, tokens.MinterOptions{Issuer: cfg.Issuer, MaxTTL: cfg.Tokens.MaxTTL})
	if err != nil {
		return err
	}
	defer minter.Close()

	issuers := append([]tokens.IssuerConfig(nil), cfg.TrustedIssuers...)
	if dev {
		devIssuer, err := tokens.OpenDevIssuer(cfg.DataDir)
		if err != nil {
			return err
		}
		issuers = append(issuers, devIssuer.IssuerConfig([]string{devAudience}))
		logger.Warn("development mode: tokens from the local development issuer are trusted; never run this in production", "issuer", tokens.DevIssuerName)
	}
	if own, ok := ownIssuer(cfg, keyring); ok {
		issuers = append(issuers, own)
	}
	verifier, err := tokens.NewVerifier(ctx, issuers, tokens.VerifierOptions{Logger: logger})
	if err != nil {
		return err
	}
	defer verifier.Close()

	engine := policies.NewEngine(policies.Options{Logger: logger, DecisionCacheSize: cfg.DecisionCacheSize})
	defer engine.Close() // after every server has stopped: no Decide runs any more
	if cfg.Policies != "" {
		if _, err := engine.LoadDir(ctx, cfg.Policies); err != nil {
			return err
		}
	}
	// With --xds the policy comes from the control plane; Checks are taken
	// only once its first bundle is in.
	if flags.xds != "" {

		subscriber, firstPolicy := newPolicySubscriber(flags.xds, engine, logger, stdout)
		subCtx, stopSub := context.WithCancel(ctx)
		defer stopSub()
		subDone := make(chan error, 1)
		go func() { subDone <- subscriber.Run(subCtx) }()
		logger.Info("waiting for the first policy bundle from the control plane", "xds", flags.xds)
		select {
		case <-firstPolicy:
		case err := <-subDone:
			return err
		case <-ctx.Done():
			stopSub()
			<-subDone
			return nil
		}
		defer func() { stopSub(); <-subDone }()
	}

	evidence, err := audit.Open(ctx, db, audit.Options{
		BatchSize: cfg.Evidence.BatchSize, FlushInterval: cfg.Evidence.FlushInterval, MaxPending: cfg.Evidence.MaxPending, Logger: logger,
	})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "writ_evidence_pending", Help: "Evidence records accepted and not yet durably written.",
	}, func() float64 { return float64(evidence.Pending()) }))
	reg.MustRegister(newCacheCollector(namedCache{"verify", verifier}, namedCache{"decision", engine}, namedCache{"mint", minter}))
	metrics := extauthz.NewMetrics(reg)

	checkCfg := cfg.Check
	checkCfg.DefaultProfile = tokens.Profile(cfg.Tokens.Profile)
	checkCfg.Logger = logger
	// CIBA clients hear of approvals through the store's events; the CIBA
	// endpoints need the store, so the hook is bound once both exist.
	var cibaHook atomic.Pointer[oauth.CIBA]
	approvalStore, err := openApprovals(ctx, db, cfg.Approvals, evidence, logger, func(e approvals.Event) {
		if c := cibaHook.Load(); c != nil {
			c.OnEvent(e)
		}
	})
	if err != nil {
		return err
	}
	defer approvalStore.Close()
	// The agent registry: suspended and pending agents are refused on the
	// Check path; statuses changed elsewhere are seen within one refresh.
	registry, err := agents.Open(ctx, db, agents.Options{Logger: logger, Refresh: cfg.Agents.Refresh})
	if err != nil {
		return err
	}
	registryCtx, stopRegistry := context.WithCancel(context.WithoutCancel(ctx))
	registryDone := make(chan error, 1)
	go func() { registryDone <- registry.Run(registryCtx) }()
	defer func() { stopRegistry(); <-registryDone }()
	auth, err := newAuthServer(ctx, cfg, db, registry, approvalStore, minter, keyring, verifier, evidence, logger)
	if err != nil {
		return err
	}
	cibaHook.Store(auth.ciba)
	defer auth.Close()
	// Revocations made on any replica reach this one's Check path within a
	// second.
	revocationsCtx, stopRevocations := context.WithCancel(context.WithoutCancel(ctx))
	revocationsDone := make(chan error, 1)
	go func() { revocationsDone <- auth.revocations.Run(revocationsCtx) }()
	defer func() { stopRevocations(); <-revocationsDone }()
	checkCfg.ResourceMetadataURLs = auth.discovery.ResourceMetadataURLs()
	deps := extauthz.Deps{Verifier: verifier, Engine: engine, Minter: minter, Evidence: evidence, Metrics: metrics, Approvals: approvalStore, Agents: registry, DenyUnknownAgents: cfg.Agents.Unknown == "deny", OwnIssuer: cfg.Issuer, Revocations: auth.revocations}
	vaultHost, vaultStore, err := newVaultHost(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if vaultHost != nil {
		deps.Credentials = vaultHost
		defer vaultHost.Close()
	}
	if vaultStore != nil {
		defer vaultStore.Close(context.WithoutCancel(ctx))
	}
	srv, err := extauthz.New(deps, checkCfg)
	if err != nil {
		return err
	}
	defer srv.Close() // after every server has stopped

	var tlsCfg *tls.Config
	if cfg.Listen.TLS.Enabled() {
		if tlsCfg, err = cfg.Listen.TLS.Load(); err != nil {
			return err
		}
	}
	grpcServer, healthServer := newGRPCServer(srv, tlsCfg)
	httpServer := &http.Server{Handler: srv.HTTPHandler(), TLSConfig: tlsCfg, MaxHeaderBytes: checkCfg.Defaults().MaxHeaderBytes, ReadHeaderTimeout: 10 * time.Second}
	api := apiHandler(keyring, evidence, reg)
	approverAuth := approverAuthenticator{verifier: verifier, ownIssuer: cfg.Issuer}
	approvalOpts := approvals.HandlerOptions{Logger: logger, SecureCookies: cfg.Issuer != "" && strings.HasPrefix(cfg.Issuer, "https://")}
	approvalAPI := approvals.Handler(approvalStore, approverAuth, approvalOpts)
	inbox := approvals.Inbox(approvalStore, approverAuth, approvalOpts)
	api.Handle("/approvals", approvalAPI)
	api.Handle("/approvals/", approvalAPI)
	api.Handle("/inbox", inbox)
	api.Handle("/inbox/", inbox)
	auth.Routes(api)
	apiServer := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}

	// Take SIGHUP before announcing readiness: a reload signal sent as soon
	// as the serving line appears must never end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	fmt.Fprintf(stdout, "writ serving: grpc=%s http=%s api=%s issuer=%s data_dir=%s policy=%s dev=%t\n",
		addrOf(grpcLn), addrOf(httpLn), addrOf(apiLn), cfg.Issuer, cfg.DataDir, engine.Revision(), dev)
	logger.Info("writ serving", "grpc", addrOf(grpcLn), "http", addrOf(httpLn), "api", addrOf(apiLn), "issuer", cfg.Issuer, "policy_revision", engine.Revision(), "xds", flags.xds, "dev", dev)

	// The evidence writer outlives the servers: it stops only after every
	// answered Check's record is durable.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	writerDone := make(chan error, 1)
	go func() { writerDone <- evidence.Run(writerCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	if grpcLn != nil {
		g.Go(func() error { return grpcServer.Serve(grpcLn) })
	}
	if httpLn != nil {
		g.Go(func() error { return serveHTTP(httpServer, httpLn, tlsCfg != nil) })
	}
	g.Go(func() error { return serveHTTP(apiServer, apiLn, false) })
	if cfg.Policies != "" {
		g.Go(func() error { return engine.Watch(gctx, cfg.Policies) })
	}
	g.Go(func() error { return reloadKeys(gctx, keyring, cfg.Tokens.KeyReload, hup, logger, stdout) })
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("writ stopping: finishing in-flight checks")
		healthServer.Shutdown()
		stopped := make(chan struct{})
		go func() { grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(shutdownGrace):
			grpcServer.Stop()
		}
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		_ = httpServer.Shutdown(shutCtx)
		_ = apiServer.Shutdown(shutCtx)
		return nil
	})
	serveErr := g.Wait()
	if errors.Is(serveErr, context.Canceled) {
		serveErr = nil
	}

	// Every Check has been answered; make its evidence durable.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	approvalStore.Close() // its last steps' evidence goes in before the log closes
	closeErr := evidence.Close(closeCtx)
	stopWriter()
	<-writerDone
	logger.Info("writ stopped", "evidence_written", evidence.Written())
	return errors.Join(serveErr, closeErr)
}

func listen(l ListenConfig) (grpcLn, httpLn, apiLn net.Listener, err error) {
	open := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen.%s: %w", name, err)
		}
		return ln, nil
	}
	if grpcLn, err = open("grpc", l.GRPC); err != nil {
		return nil, nil, nil, err
	}
	if httpLn, err = open("http", l.HTTP); err != nil {
		closeAll(grpcLn)
		return nil, nil, nil, err
	}
	if apiLn, err = open("api", l.API); err != nil {
		closeAll(grpcLn, httpLn)
		return nil, nil, nil, err
	}
	return grpcLn, httpLn, apiLn, nil
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
		}
	}
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

func newGRPCServer(srv *extauthz.Server, tlsCfg *tls.Config) (*grpc.Server, *health.Server) {
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	// A fixed pool of stream workers (one per CPU) serves Checks without a
	// goroutine per call.
	opts = append(opts, grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
	g := grpc.NewServer(opts...)
	srv.RegisterGRPC(g)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g) // lets grpcurl and ghz call Check without .proto files
	return g, hs
}

func serveHTTP(s *http.Server, ln net.Listener, useTLS bool) error {
	var err error
	if useTLS {
		err = s.ServeTLS(ln, "", "")
	} else {
		err = s.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// apiHandler serves the JWKS, Prometheus metrics and health.
func apiHandler(keyring *tokens.Keyring, evidence *audit.Log, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(keyring.JWKS())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := evidence.Healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unavailable","reason":"evidence log unavailable"}`)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	return mux
}

// approverAuthenticator verifies an approver's bearer token with the same
// trusted issuers as the Check path: the approver is the token's user (its
// sub), with groups and roles from the "groups" and "roles" claims.
type approverAuthenticator struct {
	verifier *tokens.Verifier
	// ownIssuer is writ's issuer: its tokens are agents' tokens, never a
	// person's.
	ownIssuer string
}

var (
	errDelegatedApprover = errors.New("a delegated token (with act) cannot approve")
	errAgentApprover     = errors.New("a token from writ's own token endpoint belongs to an agent and cannot approve")
)

func (a approverAuthenticator) Authenticate(ctx context.Context, bearer string) (approvals.Approver, error) {
	id, err := a.verifier.Verify(ctx, bearer)
	if err != nil {
		return approvals.Approver{}, err
	}
	if id.Issuer == a.ownIssuer {
		return approvals.Approver{}, errAgentApprover
	}
	if len(id.Actors) > 0 {
		// A delegated token is an agent acting for the user: an agent never
		// approves, not even on its user's behalf.
		return approvals.Approver{}, errDelegatedApprover
	}
	subject := id.User
	if subject == "" {
		subject, _ = id.Claims["sub"].(string)
	}
	return approvals.Approver{Subject: subject, Groups: claimStrings(id.Claims["groups"]), Roles: claimStrings(id.Claims["roles"]), ExpiresAt: id.ExpiresAt}, nil
}

func claimStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// reloadKeys re-reads the signing keys so a `writ keys rotate` run against
// the same data directory is published without a restart: every interval,
// and at once on a signal from hup (SIGHUP; then it prints the current key
// id, so scripts and tests can wait for it).
func reloadKeys(ctx context.Context, k *tokens.Keyring, every time.Duration, hup <-chan os.Signal, logger *slog.Logger, stdout io.Writer) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.Reload(ctx); err != nil && ctx.Err() == nil {
				logger.Error("signing keys not reloaded", "error", err)
			}
		case <-hup:
			if err := k.Reload(ctx); err != nil {
				logger.Error("signing keys not reloaded", "error", err)
				continue
			}
			logger.Info("signing keys reloaded", "current_kid", k.CurrentKeyID())
			fmt.Fprintf(stdout, "writ signing keys reloaded: current=%s\n", k.CurrentKeyID())
		}
	}
}
