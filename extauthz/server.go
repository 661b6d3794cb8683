package extauthz

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
)

// RegisterGRPC registers the Authorization service on g.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
}

// HTTPHandler serves Envoy's HTTP service mode: Envoy forwards the
// original request's method, path, allowed headers and (optionally) body;
// a 200 answer allows it, its headers carry what to set upstream and
// x-envoy-auth-headers-to-remove what to remove; any other answer is the
// denial the agent sees.
func (s *Server) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(s.cfg.MaxBodyBytes)
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		// A body beyond the limit is passed on as truncated: describeBody refuses
		// to parse it and answers 413 when the route is MCP.
		truncated := int64(len(body)) > limit
		if truncated {
			body = body[:limit]
		}
		req := checkRequestFromHTTP(r, s.cfg.HTTPPathPrefix, body, truncated)
		writeHTTPResponse(w, s.check(r.Context(), req, "http"))
	})
}

// TLSConfig configures TLS, and optionally mTLS, on the ext_authz listeners.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate chain and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires client certificates signed by these
	// PEM CAs (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (c *TLSConfig) Enabled() bool { return c != nil && (c.CertFile != "" || c.KeyFile != "") }

// Validate reports an incomplete TLS configuration.
func (c *TLSConfig) Validate() error {
	if c == nil {
		return nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("listen.tls: cert_file and key_file must be set together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return errors.New("listen.tls: client_ca_file needs cert_file and key_file")
	}
	return nil
}

// Load builds the *tls.Config (TLS 1.2 or later).
func (c *TLSConfig) Load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("listen.tls: load key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("listen.tls: read client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("listen.tls: client_ca_file %s holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
