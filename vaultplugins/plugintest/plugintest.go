package plugintest

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/internal/hook"
)

// Options adjust the harness.
type Options struct {
	// MaxResponseBytes is the host's response cap. Default
	// vaultplugins.DefaultMaxResponseBytes.
	MaxResponseBytes int
}

// New serves b over an in-memory gRPC connection and returns the Backend
// the host would see. Everything is stopped when t ends; if b implements
// vaultplugins.Closer it is closed then too, as Serve does.
func New(t testing.TB, b vaultplugins.Backend) vaultplugins.Backend {
	return NewWithOptions(t, b, Options{})
}

// NewWithOptions is New with options.
func NewWithOptions(t testing.TB, b vaultplugins.Backend, opts Options) vaultplugins.Backend {
	t.Helper()
	if opts.MaxResponseBytes == 0 {
		opts.MaxResponseBytes = vaultplugins.DefaultMaxResponseBytes
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	hook.Register(srv, b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///plugintest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		srv.Stop()
		<-done
		t.Fatalf("plugintest: dial: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
		if c, ok := b.(vaultplugins.Closer); ok {
			if err := c.Close(context.Background()); err != nil {
				t.Errorf("plugintest: close backend: %v", err)
			}
		}
	})
	return hook.NewClient(conn, opts.MaxResponseBytes).(vaultplugins.Backend)
}
