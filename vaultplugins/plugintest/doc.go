// Package plugintest runs a vault backend behind the real gRPC shim, in
// process, so a backend's tests see it exactly as writ's host does: requests
// and credentials cross protobuf, errors cross as gRPC status codes and come
// back as the vaultplugins sentinels, and the host's response size cap
// applies.
//
//	func TestFetch(t *testing.T) {
//		b := plugintest.New(t, mybackend.New())
//		cred, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "github"})
//		...
//	}
package plugintest
