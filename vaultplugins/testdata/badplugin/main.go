// Command badplugin speaks go-plugin but not writ's handshake: with
// BAD_MODE=version it announces protocol version 99, otherwise it expects
// another magic cookie.
package main

import (
	"os"

	"github.com/hashicorp/go-plugin"
)

func main() {
	if path := os.Getenv("TESTPLUGIN_MARKER"); path != "" {
		os.WriteFile(path, []byte("ran"), 0o600)
	}
	hs := plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "OTHER_PLUGIN", MagicCookieValue: "x"}
	if os.Getenv("BAD_MODE") == "version" {
		hs = plugin.HandshakeConfig{ProtocolVersion: 99, MagicCookieKey: "WRIT_VAULT_PLUGIN", MagicCookieValue: "8f3c1d6e2b7a4f90a5e1c3d7b9f20e64"}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         plugin.PluginSet{},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
