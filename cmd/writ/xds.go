package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/xds"
)

// xdsCommand runs writ's control plane (writ xds) or prints what it would
// push (writ xds render).
func xdsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "render" {
		return xdsRenderCommand(args[1:], stdout)
	}
	fs := newFlags("xds")
	meshPath := fs.String("mesh", "", "mesh file: the Envoy sidecars and gRPC services to configure")
	policyDir := fs.String("policies", "", "policy directory published to writ replicas (watched)")
	listenAddr := fs.String("listen", "127.0.0.1:18000", "ADS listen address")
	apiAddr := fs.String("api", "", "address serving /metrics and /healthz (default: off)")
	validate := fs.Bool("validate", true, "compile each policy revision before publishing it; false leaves replicas to NACK what does not compile")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: xds takes no arguments, got %q", errUsage, fs.Args())
	}
	if *meshPath == "" && *policyDir == "" {
		return fmt.Errorf("%w: xds needs --mesh, --policies or both", errUsage)
	}
	switch *logLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%w: --log-level %q is not one of debug, info, warn, error", errUsage, *logLevel)
	}
	logger := newLogger(stderr, *logLevel)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	out := &lockedWriter{w: stdout}
	opts := xds.ServerOptions{MeshPath: *meshPath, Logger: logger, Registerer: reg, Notify: out.event}
	if *policyDir != "" {
		dir := *policyDir
		opts.Bundle = func(context.Context) (xds.Bundle, error) { return readPolicyBundle(dir) }
		opts.BundleDir = dir
		if *validate {
			opts.Validate = func(ctx context.Context, b xds.Bundle) error { return compileBundle(ctx, b, logger) }
		}
	}
	srv, err := xds.NewServer(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var apiLn net.Listener
	if *apiAddr != "" {
		if apiLn, err = net.Listen("tcp", *apiAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--api: %w", err)
		}
	}
	out.printf("writ xds serving: ads=%s api=%s mesh=%s policies=%s\n", ln.Addr(), addrOf(apiLn), orNone(*meshPath), orNone(*policyDir))
	logger.Info("writ xds serving", "ads", ln.Addr().String(), "api", addrOf(apiLn), "mesh", *meshPath, "policies", *policyDir)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	if apiLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"ok"}`)
		})
		api := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { return serveHTTP(api, apiLn, false) })
		g.Go(func() error {
			<-gctx.Done()
			shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			return api.Shutdown(shutCtx)
		})
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func xdsRenderCommand(args []string, stdout io.Writer) error {
	fs := newFlags("xds render")
	meshPath := fs.String("mesh", "", "mesh file")
	format := fs.String("format", "yaml", "yaml or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *meshPath == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: xds render needs --mesh FILE and no arguments", errUsage)
	}
	m, err := xds.LoadMesh(*meshPath)
	if err != nil {
		return err
	}
	nodes, err := xds.Build(m)
	if err != nil {
		return err
	}
	return xds.Render(nodes, *format, stdout)
}

// readPolicyBundle reads a policy directory into the bundle writ publishes.
func readPolicyBundle(dir string) (xds.Bundle, error) {
	b, err := policies.ReadBundle(dir)
	if err != nil {
		return xds.Bundle{}, err
	}
	out := xds.Bundle{Modules: b.Modules}
	if len(b.Data) > 0 {
		// encoding/json sorts map keys: the bytes, and so the revision,
		// are those a replica's engine computes.
		if out.Data, err = json.Marshal(b.Data); err != nil {
			return xds.Bundle{}, fmt.Errorf("%w: data: %w", policies.ErrCompile, err)
		}
	}
	return out, nil
}

// policyBundle turns a received bundle into the engine's form; numbers
// keep their digits.
func policyBundle(b xds.Bundle) (policies.Bundle, error) {
	out := policies.Bundle{Modules: b.Modules}
	if len(b.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b.Data))
		dec.UseNumber()
		if err := dec.Decode(&out.Data); err != nil {
			return policies.Bundle{}, fmt.Errorf("%w: data: %w", policies.ErrCompile, err)
		}
	}
	return out, nil
}

// compileBundle compiles b in a scratch engine, as a replica will.
func compileBundle(ctx context.Context, b xds.Bundle, logger *slog.Logger) error {
	pb, err := policyBundle(b)
	if err != nil {
		return err
	}
	engine := policies.NewEngine(policies.Options{Logger: logger, DecisionCacheSize: -1})
	defer engine.Close()
	_, err = engine.LoadBundle(ctx, pb)
	return err
}

// lockedWriter serialises the stdout lines of the control plane, which
// scripts and tests wait on.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

func (l *lockedWriter) event(ev xds.Event) {
	switch ev.Kind {
	case xds.Published:
		l.printf("writ xds published: source=%s version=%s\n", ev.Source, ev.Version)
	case xds.Rejected:
		l.printf("writ xds rejected: source=%s error=%q\n", ev.Source, ev.Err.Error())
	case xds.NACK:
		l.printf("writ xds nack: node=%s type=%s version=%s error=%q\n", ev.Node, ev.TypeURL, ev.Version, ev.Err.Error())
	case xds.ACK:
		if ev.TypeURL == xds.BundleType {
			l.printf("writ xds ack: node=%s version=%s\n", ev.Node, ev.Version)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// newPolicySubscriber follows the control plane at addr: every bundle is
// compiled and swapped into engine (a failure is NACKed and the last good
// revision keeps serving), and each swap prints "writ policy revision: REV".
// The channel closes once the first bundle is in.
func newPolicySubscriber(addr string, engine *policies.Engine, logger *slog.Logger, stdout io.Writer) (*xds.Subscriber, <-chan struct{}) {
	first := make(chan struct{})
	var once sync.Once
	sub := xds.NewSubscriber(xds.SubscriberOptions{
		Address: addr,
		Logger:  logger,
		Apply: func(ctx context.Context, b xds.Bundle) (string, error) {
			pb, err := policyBundle(b)
			if err != nil {
				return "", err
			}
			before := engine.Revision()
			rev, err := engine.LoadBundle(ctx, pb)
			if err != nil {
				return "", err
			}
			if rev != before {
				logger.Info("policy revision loaded", "revision", rev, "previous_revision", before, "xds", addr)
				fmt.Fprintf(stdout, "writ policy revision: %s\n", rev)
			}
			once.Do(func() { close(first) })
			return rev, nil
		},
	})
	return sub, first
}
