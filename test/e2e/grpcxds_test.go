package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/writ-dev/writ/test/writtest"
)

// healthServer is a gRPC server on loopback with the standard health
// service, counting the Check calls it answers.
type healthServer struct {
	Addr   string
	checks atomic.Int64
}

func startHealthServer(t *testing.T) *healthServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{Addr: ln.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if info.FullMethod == healthpb.Health_Check_FullMethodName {
			h.checks.Add(1)
		}
		return next(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer()) // reports SERVING for ""
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("health server: %v", err)
		}
	})
	return h
}

// grpcMesh is a mesh file with one gRPC service for a gRPC xDS client.
func grpcMesh(name, node, upstream string) string {
	return fmt.Sprintf("grpc_services:\n  - name: %s\n    node: %s\n    upstream:\n      address: %s\n", name, node, upstream)
}

// buildGRPCXDSClient compiles test/interop/grpcxds, gRPC-Go's xDS client.
func buildGRPCXDSClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "grpcxds")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/interop/grpcxds")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./test/interop/grpcxds: %v\n%s", err, out)
	}
	return bin
}

// xdsBootstrap is gRPC-Go's bootstrap naming the control plane at ads.
func xdsBootstrap(t *testing.T, ads, node string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      ads,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": node, "locality": map[string]any{"region": "local"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runGRPCXDSClient runs the client once against target and returns its
// stdout; a failure or a run past the deadline fails the test.
func runGRPCXDSClient(t *testing.T, bin, bootstrap, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-target", target, "-timeout", "30s")
	cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("grpcxds %s: %v\nstdout: %s\nstderr: %s", target, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestGRPCXDSClient: gRPC-Go's xDS client, which writ did not write, learns
// a Listener (api_listener), RouteConfiguration, Cluster and endpoints from
// `writ xds` and completes a health check RPC on them; after the mesh file
// moves the service to another server, the next client reaches that one.
func TestGRPCXDSClient(t *testing.T) {
	const (
		service = "echo.test"
		node    = "grpc-client-1"
		target  = "xds:///" + service
	)
	bin := writtest.Build(t)
	client := buildGRPCXDSClient(t)
	first, second := startHealthServer(t), startHealthServer(t)

	dir := t.TempDir()
	meshPath := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshPath, []byte(grpcMesh(service, node, first.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	policyDir := filepath.Join(dir, "policies")
	if err := os.Mkdir(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, policyDir, allowOnly("search_issues"))
	cp := startControlPlane(t, bin, "--mesh", meshPath, "--policies", policyDir, "--listen", "127.0.0.1:0")
	published := regexp.MustCompile(`^writ xds published: source=mesh version=(\S+)`)
	v1 := cp.waitForLine(t, published)[1]
	bootstrap := xdsBootstrap(t, cp.ADS, node)

	if got := strings.TrimSpace(runGRPCXDSClient(t, client, bootstrap, target)); got != "SERVING" {
		t.Errorf("first run printed %q, want SERVING", got)
	}
	if n := first.checks.Load(); n != 1 {
		t.Errorf("first server answered %d checks, want 1", n)
	}
	if n := second.checks.Load(); n != 0 {
		t.Errorf("second server answered %d checks before the mesh named it, want 0", n)
	}

	// The mesh moves the service: the next client follows the new endpoint.
	if err := os.WriteFile(meshPath, []byte(grpcMesh(service, node, second.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := cp.waitForLine(t, published)[1]
	if v2 == v1 {
		t.Fatalf("mesh version unchanged after moving the upstream: %s", v2)
	}
	if got := strings.TrimSpace(runGRPCXDSClient(t, client, bootstrap, target)); got != "SERVING" {
		t.Errorf("second run printed %q, want SERVING", got)
	}
	if n := second.checks.Load(); n != 1 {
		t.Errorf("second server answered %d checks, want 1", n)
	}
	if n := first.checks.Load(); n != 1 {
		t.Errorf("first server answered %d checks after the mesh moved the service away, want still 1", n)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, line := range cp.lines {
		if strings.HasPrefix(line, "writ xds nack:") {
			t.Errorf("the client rejected a resource: %s", line)
		}
	}
}
