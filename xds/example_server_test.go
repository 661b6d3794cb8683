package xds_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/writ-dev/writ/xds"
)

// A control plane publishing one policy bundle, and a replica following it.
func ExampleNewSubscriber() {
	srv, err := xds.NewServer(xds.ServerOptions{
		Bundle: func(context.Context) (xds.Bundle, error) {
			return xds.Bundle{Modules: map[string]string{"authz.rego": "package writ.authz\n\ndecision := {\"allow\": true}\n"}}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	applied := make(chan string, 1)
	sub := xds.NewSubscriber(xds.SubscriberOptions{
		Address: ln.Addr().String(),
		Logger:  slog.New(slog.DiscardHandler),
		Apply: func(_ context.Context, b xds.Bundle) (string, error) {
			// A replica compiles b here and swaps it in.
			select {
			case applied <- b.Revision:
			default:
			}
			return b.Revision, nil
		},
	})
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	fmt.Println(<-applied)
	cancel()
	<-done
	<-served
	// Output: sha256:74bdd750adbebf48
}
