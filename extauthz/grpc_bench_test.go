package extauthz_test

import (
	"context"
	"net"
	"runtime"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkCheckGRPC is the full path over a real loopback gRPC connection:
// what Envoy's ext_authz filter pays per request, client included.
func BenchmarkCheckGRPC(b *testing.B) {
	r, reqs := benchRig(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))) // as writ serve runs it
	r.srv.RegisterGRPC(g)
	go g.Serve(ln)
	b.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, err := client.Check(ctx, reqs[i%len(reqs)])
			if err != nil || resp.GetOkResponse() == nil {
				b.Errorf("check: %v %v", err, resp)
				return
			}
			i++
		}
	})
}
