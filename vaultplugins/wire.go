package vaultplugins

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/writ-dev/writ/vaultplugins/internal/hook"
	"github.com/writ-dev/writ/vaultplugins/internal/vaultpb"
)

// ProtocolVersion is the plugin protocol version the handshake carries. A
// plugin built against another version is refused at start.
const ProtocolVersion = 1

// DefaultMaxResponseBytes caps the credential bytes (values, names, header,
// format, version) a backend may return in one response.
const DefaultMaxResponseBytes = 64 << 10

// pluginName is the single plugin a backend binary serves.
const pluginName = "backend"

// handshake is shared by Serve and the host. The magic cookie is not a
// security measure: it keeps a plugin binary from being run by hand.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "WRIT_VAULT_PLUGIN",
	MagicCookieValue: "8f3c1d6e2b7a4f90a5e1c3d7b9f20e64",
}

// errorDomain marks statuses a backend returned on purpose, as opposed to
// transport failures.
const errorDomain = "vaultplugins.writ.dev"

var reasons = []struct {
	err    error
	reason string
	code   codes.Code
}{
	{ErrNotFound, "NOT_FOUND", codes.NotFound},
	{ErrDenied, "DENIED", codes.PermissionDenied},
	{ErrRevoked, "REVOKED", codes.Unauthenticated},
	{ErrInvalidRequest, "INVALID_REQUEST", codes.InvalidArgument},
	{ErrUnavailable, "UNAVAILABLE", codes.Unavailable},
	{ErrUnsupported, "UNSUPPORTED", codes.Unimplemented},
	{ErrTimeout, "TIMEOUT", codes.DeadlineExceeded},
}

// maxErrorMessage bounds the error text a backend can send to the host.
const maxErrorMessage = 256

// errTransport marks errors where the connection to the plugin, not the
// backend, failed; the host then checks whether the plugin is alive.
var errTransport = errors.New("plugin transport failure")

func init() {
	hook.Register = func(s *grpc.Server, b any) {
		vaultpb.RegisterBackendServer(s, &grpcServer{impl: b.(Backend)})
	}
	hook.NewClient = func(conn *grpc.ClientConn, maxResponseBytes int) any {
		return &grpcClient{client: vaultpb.NewBackendClient(conn), maxResponseBytes: maxResponseBytes}
	}
}

// goPlugin adapts a Backend to go-plugin's gRPC plugin.
type goPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl             Backend // server side only
	maxResponseBytes int     // client side only
}

func (p *goPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	vaultpb.RegisterBackendServer(s, &grpcServer{impl: p.impl})
	return nil
}

func (p *goPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &grpcClient{client: vaultpb.NewBackendClient(conn), maxResponseBytes: p.maxResponseBytes}, nil
}

// grpcServer runs in the plugin process: fromproto → Backend → toproto.
type grpcServer struct {
	vaultpb.UnimplementedBackendServer
	impl Backend
}

func (s *grpcServer) Fetch(ctx context.Context, in *vaultpb.FetchRequest) (*vaultpb.FetchResponse, error) {
	cred, err := s.impl.Fetch(ctx, requestFromProto(in))
	if err != nil {
		return nil, toStatus(err)
	}
	return credentialToProto(cred), nil
}

func (s *grpcServer) Describe(ctx context.Context, _ *vaultpb.DescribeRequest) (*vaultpb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &vaultpb.DescribeResponse{Name: d.Name, Version: d.Version, Summary: d.Summary}, nil
}

// grpcClient runs in the host: toproto → RPC → fromproto.
type grpcClient struct {
	client           vaultpb.BackendClient
	maxResponseBytes int
}

// wireOverhead allows for field tags, lengths and the expiry timestamp on
// top of the capped credential bytes.
const wireOverhead = 4 << 10

func (c *grpcClient) Fetch(ctx context.Context, req Request) (Credential, error) {
	out, err := c.client.Fetch(ctx, requestToProto(req), grpc.MaxCallRecvMsgSize(c.maxResponseBytes+wireOverhead))
	if err != nil {
		return Credential{}, fromStatus(ctx, err)
	}
	cred := credentialFromProto(out)
	if n := cred.size(); n > c.maxResponseBytes {
		return Credential{}, fmt.Errorf("%w: %d bytes, limit %d", ErrResponseTooLarge, n, c.maxResponseBytes)
	}
	return cred, nil
}

func (c *grpcClient) Describe(ctx context.Context) (Description, error) {
	out, err := c.client.Describe(ctx, &vaultpb.DescribeRequest{}, grpc.MaxCallRecvMsgSize(c.maxResponseBytes+wireOverhead))
	if err != nil {
		return Description{}, fromStatus(ctx, err)
	}
	return Description{Name: out.GetName(), Version: out.GetVersion(), Summary: out.GetSummary()}, nil
}

func requestToProto(r Request) *vaultpb.FetchRequest {
	return &vaultpb.FetchRequest{
		Backend: r.Backend, Ref: r.Ref, User: r.User, Agent: r.Agent,
		Tenant: r.Tenant, Resource: r.Resource, Scopes: r.Scopes,
	}
}

func requestFromProto(in *vaultpb.FetchRequest) Request {
	return Request{
		Backend: in.GetBackend(), Ref: in.GetRef(), User: in.GetUser(), Agent: in.GetAgent(),
		Tenant: in.GetTenant(), Resource: in.GetResource(), Scopes: in.GetScopes(),
	}
}

func credentialToProto(c Credential) *vaultpb.FetchResponse {
	out := &vaultpb.FetchResponse{
		Value:   []byte(c.Value.Reveal()),
		Header:  c.Header,
		Format:  c.Format,
		Version: c.Version,
	}
	if len(c.Values) > 0 {
		out.Values = make(map[string][]byte, len(c.Values))
		for k, v := range c.Values {
			out.Values[k] = []byte(v.Reveal())
		}
	}
	if !c.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(c.ExpiresAt)
	}
	return out
}

func credentialFromProto(in *vaultpb.FetchResponse) Credential {
	c := Credential{
		Value:   Secret(in.GetValue()),
		Header:  in.GetHeader(),
		Format:  in.GetFormat(),
		Version: in.GetVersion(),
	}
	if len(in.GetValues()) > 0 {
		c.Values = make(map[string]Secret, len(in.GetValues()))
		for k, v := range in.GetValues() {
			c.Values[k] = Secret(v)
		}
	}
	if ts := in.GetExpiresAt(); ts != nil {
		c.ExpiresAt = ts.AsTime()
	}
	return c
}

// toStatus turns a backend's error into a gRPC status carrying the
// sentinel's reason.
func toStatus(err error) error {
	reason, code := "BACKEND", codes.Internal
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			reason, code = r.reason, r.code
			break
		}
	}
	st := status.New(code, clip(err.Error()))
	if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}); derr == nil {
		st = withInfo
	}
	return st.Err()
}

// remoteError is a backend's error as the host sees it: the backend's
// message, unwrapping to the SDK sentinel.
type remoteError struct {
	msg string
	err error
}

func (e *remoteError) Error() string {
	switch {
	case e.msg == "":
		return e.err.Error()
	case strings.HasPrefix(e.msg, e.err.Error()):
		return e.msg
	}
	return e.err.Error() + ": " + e.msg
}

func (e *remoteError) Unwrap() error { return e.err }

// fromStatus turns an RPC error back into the SDK's sentinels.
func fromStatus(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %w", ErrUnavailable, errTransport)
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		sentinel := ErrBackend
		for _, r := range reasons {
			if r.reason == info.GetReason() {
				sentinel = r.err
				break
			}
		}
		return &remoteError{msg: clip(st.Message()), err: sentinel}
	}
	// No detail: the transport, not the backend, produced this status.
	switch {
	case st.Code() == codes.DeadlineExceeded || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ErrTimeout
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case st.Code() == codes.ResourceExhausted:
		return fmt.Errorf("%w: %s", ErrResponseTooLarge, clip(st.Message()))
	case st.Code() == codes.Unavailable, st.Code() == codes.Canceled:
		return fmt.Errorf("%w: %w", ErrUnavailable, errTransport)
	}
	return fmt.Errorf("%w: %w: %s", ErrBackend, errTransport, clip(st.Message()))
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > maxErrorMessage {
		s = strings.ToValidUTF8(s[:maxErrorMessage], "") + "…"
	}
	return s
}
