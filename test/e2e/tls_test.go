package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/writ-dev/writ/test/writtest"
)

type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	dir    string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "writ test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{caCert: cert, caKey: key, pool: x509.NewCertPool(), dir: t.TempDir()}
	p.pool.AddCert(cert)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes name.pem and name-key.pem and returns the pair.
func (p *pki) issue(t *testing.T, name string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.dir, name+"-key.pem"), "PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// TestMutualTLS: with listen.tls and a client CA, both ext_authz listeners
// take only clients holding a certificate from that CA.
func TestMutualTLS(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	p := newPKI(t)
	p.issue(t, "server", true)
	envoyCert := p.issue(t, "envoy", false)
	cfg := "listen:\n  tls:\n" +
		"    cert_file: " + filepath.Join(p.dir, "server.pem") + "\n" +
		"    key_file: " + filepath.Join(p.dir, "server-key.pem") + "\n" +
		"    client_ca_file: " + filepath.Join(p.dir, "ca.pem") + "\n"
	// The harness writes its own listen block; append only the tls part under it.
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}, ListenExtra: strings.TrimPrefix(cfg, "listen:\n")})
	tok := idp.Delegated(t, "alice", "research-bot", "tenant-a")

	dial := func(certs []tls.Certificate) (*authv3.CheckResponse, error) {
		creds := credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12})
		conn, err := grpc.NewClient(w.GRPC, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return authv3.NewAuthorizationClient(conn).Check(t.Context(), writtest.ToolCall("search_issues", nil, tok, nil))
	}
	resp, err := dial([]tls.Certificate{envoyCert})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("gRPC over mTLS: %v %v", err, resp)
	}
	if _, err := dial(nil); err == nil {
		t.Fatal("gRPC without a client certificate was accepted")
	}

	httpsClient := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "https://"+w.HTTP+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	hresp, err := httpsClient([]tls.Certificate{envoyCert}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != 200 {
		t.Fatalf("HTTP mode over mTLS: status %d", hresp.StatusCode)
	}
	req2, _ := http.NewRequestWithContext(t.Context(), "POST", "https://"+w.HTTP+"/mcp", nil)
	if r, err := httpsClient(nil).Do(req2); err == nil {
		r.Body.Close()
		t.Fatal("HTTP mode without a client certificate was accepted")
	}
}
