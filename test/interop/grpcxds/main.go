// Command grpcxds is a gRPC-Go xDS client writ did not write: it dials a
// service through writ's control plane and makes one health check RPC.
//
// gRPC-Go reads its bootstrap at package init, so the control plane is
// named in the environment before the process starts:
//
//	GRPC_XDS_BOOTSTRAP_CONFIG='{"xds_servers":[{"server_uri":"127.0.0.1:18000",
//	  "channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],
//	  "node":{"id":"grpc-client-1"}}' grpcxds -target xds:///echo.test
//
// It prints the serving status (SERVING) and exits 0, or prints the error
// and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

func main() {
	target := flag.String("target", "", "dial target, e.g. xds:///echo.test")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on resolving the target and making the call")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "grpcxds: -target is required")
		os.Exit(2)
	}
	status, err := check(*target, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcxds:", err)
		os.Exit(1)
	}
	fmt.Println(status)
}

// check makes one grpc.health.v1.Health/Check call on target. The call
// waits for the xDS resources (WaitForReady) until the timeout.
func check(target string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", target, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return "", fmt.Errorf("health check through %s: %w", target, err)
	}
	return resp.GetStatus().String(), nil
}
