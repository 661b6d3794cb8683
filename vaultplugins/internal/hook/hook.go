// Package hook lets the plugintest harness reach the gRPC shim of package
// vaultplugins without making it public. Package vaultplugins sets both
// functions in its init.
package hook

import "google.golang.org/grpc"

// Register registers the backend service serving b (a vaultplugins.Backend).
var Register func(s *grpc.Server, b any)

// NewClient returns the host-side vaultplugins.Backend speaking over conn.
var NewClient func(conn *grpc.ClientConn, maxResponseBytes int) any
