package xds_test

import (
	"fmt"
	"os"

	"github.com/writ-dev/writ/xds"
)

func ExampleBuild() {
	mesh, err := xds.ParseMesh([]byte(`
grpc_services:
  - name: echo.test
    node: grpc-client-1
    upstream: {address: 127.0.0.1:50051}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	nodes, err := xds.Build(mesh)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes {
		snap, err := n.Snapshot()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(n.Node, len(snap.GetResources("type.googleapis.com/envoy.config.listener.v3.Listener")), "listener")
	}
	// Output: grpc-client-1 1 listener
}

func ExampleParseMesh_invalid() {
	_, err := xds.ParseMesh([]byte(`
writ: {address: 127.0.0.1:9191}
sidecars:
  - node: n1
    listen: 0.0.0.0:10000
    upstreams: [{name: app, address: 127.0.0.1:8081}]
    routes: [{name: health, match: {path: healthz}, upstream: app, authorization: skip}]
`))
	fmt.Println(err)
	// Output: xds: invalid mesh: sidecars[0].routes[0].match.path: must start with "/"
}

func ExampleRender() {
	mesh, _ := xds.ParseMesh([]byte(`
grpc_services: [{name: echo.test, node: c1, upstream: {address: 127.0.0.1:50051}}]
`))
	nodes, _ := xds.Build(mesh)
	if err := xds.Render(nodes[:1], "yaml", os.Stdout); err != nil {
		fmt.Println(err)
	}
}
