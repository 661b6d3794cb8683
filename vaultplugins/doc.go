// Package vaultplugins is the contract between writ and the vault backends
// that hold the credentials upstreams need. A decision names a backend and a
// reference; at call time writ fetches the credential from the backend and
// sets it on the upstream request, so the agent never holds it.
//
// A backend implements Backend and serves it from its main:
//
//	func main() { vaultplugins.Serve(mybackend{}) }
//
// writ launches configured plugin binaries through a Host, which verifies
// each binary's SHA-256 before starting it, talks to it over gRPC with
// automatic mTLS, restarts it with backoff when it crashes and bounds every
// call with a timeout:
//
//	h, err := vaultplugins.NewHost(ctx, vaultplugins.HostConfig{
//		Plugins: []vaultplugins.PluginConfig{{Name: "github", Path: "/opt/writ/plugins/gh", SHA256: sum}},
//	})
//	defer h.Close()
//	cred, err := h.Fetch(ctx, vaultplugins.Request{Backend: "github", Ref: "ci", User: "alice"})
//	header, value, err := cred.Render() // value is a Secret: it prints as REDACTED
//
// Errors cross the process boundary as gRPC status codes and come back as
// the sentinels in errors.go, so errors.Is works on the host. Package
// plugintest runs a backend through the same gRPC shim in process.
package vaultplugins
