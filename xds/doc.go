// Package xds is writ's control plane: it turns a mesh file into Envoy
// listeners, routes, clusters and endpoints with the ext_authz filter wired
// to writ, serves them over ADS (state-of-the-world and delta) with
// go-control-plane, and publishes writ's policy bundle to writ replicas as
// an xDS resource of writ's own type. It imports no other writ package: the
// binary wires policy compilation in through small function types.
//
//	mesh, err := xds.LoadMesh("mesh.yaml")
//	nodes, err := xds.Build(mesh)             // pure: mesh → per-node Envoy resources
//	snap, err := nodes[0].Snapshot()          // validated, versioned by content hash
//
// Files: mesh.go (the mesh file), build.go (resources), render.go (writ xds
// render), server.go (ADS), bundle.go (the policy bundle resource),
// subscriber.go (the replica side).
package xds
