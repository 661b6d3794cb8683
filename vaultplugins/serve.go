package vaultplugins

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// closeTimeout bounds a backend's Close when its plugin process stops.
const closeTimeout = 10 * time.Second

// Serve serves b as a vault backend plugin over gRPC and returns when the
// host stops the plugin; it is the whole of a plugin binary's main. A binary
// started by hand, not by writ, prints a notice and exits with status 1.
func Serve(b Backend) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{pluginName: &goPlugin{impl: b}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Output:     os.Stderr,
			Level:      hclog.Info,
			JSONFormat: true,
		}),
	})
	if c, ok := b.(Closer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = c.Close(ctx)
	}
}
