// Package envoy holds Envoy bootstrap files for running Envoy in front of
// upstream resources with writ deciding every request, and tests that load
// each file into Envoy's bootstrap type and validate it.
//
//   - sidecar-ads.yaml: a sidecar that takes everything (LDS, CDS, and
//     through them RDS and EDS) from `writ xds` over ADS at 127.0.0.1:18000.
//     Set node.id (or pass --service-node) to the sidecar's node in the mesh
//     file. Admin on 127.0.0.1:9901.
//   - static.yaml: a complete Envoy with no control plane: a listener on
//     :10000, ext_authz over gRPC to writ at 127.0.0.1:9191, and the router
//     to an MCP server at 127.0.0.1:8081. The /mcp route sends its body and
//     route context (context_extensions) to writ; /healthz skips
//     authorization.
//
// Run Envoy with either file:
//
//	writ xds --mesh mesh.yaml &
//	envoy -c envoy/sidecar-ads.yaml --service-node sidecar-tickets
//
//	envoy -c envoy/static.yaml
//
// The tests validate both files with Envoy's generated ValidateAll, and run
// `envoy --mode validate` when an envoy binary is on PATH (or $ENVOY names
// one).
package envoy
