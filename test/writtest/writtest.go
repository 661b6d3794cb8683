package writtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/MicahParks/jwkset"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// T is the part of testing.TB the harness uses; the load tool supplies its own.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Build compiles ./cmd/writ once per test binary and returns its path.
func Build(t T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "writ-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "writ")
		args := []string{"build", "-o", buildPath, "./cmd/writ"}
		if raceEnabled && os.Getenv("WRIT_BUILD_NORACE") == "" {
			args = []string{"build", "-race", "-o", buildPath, "./cmd/writ"}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = moduleRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/writ: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Issuer is a trusted identity provider: an ES256 key and its JWKS file.
type Issuer struct {
	Name     string
	Audience string
	JWKSFile string
	key      *ecdsa.PrivateKey
	kid      string
}

// NewIssuer creates an issuer whose JWKS is written into a temp directory.
func NewIssuer(t T) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{Name: "https://idp.test", Audience: "https://writ.test", key: key, kid: "idp-key-1"}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: iss.kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	iss.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(iss.JWKSFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	return iss
}

// WithKeyID returns a copy of the issuer that names another kid in its
// tokens' headers (its JWKS file still names the original).
func (i *Issuer) WithKeyID(kid string) *Issuer {
	c := *i
	c.kid = kid
	return &c
}

// Sign signs claims with the issuer's key (iss, aud, iat, exp filled when absent).
func (i *Issuer) Sign(t T, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	for k, v := range map[string]any{"iss": i.Name, "aud": i.Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()} {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = i.kid
	s, err := tok.SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Delegated signs an RFC 8693 delegated token: user as sub, agent as act.sub.
func (i *Issuer) Delegated(t T, user, agent, tenant string) string {
	return i.Sign(t, jwt.MapClaims{"sub": user, "act": map[string]any{"sub": agent}, "client_id": agent, "tenant": tenant, "scope": "tools.call"})
}

// Options shape a started writ.
type Options struct {
	Issuers []*Issuer
	// Config is extra YAML appended to the generated configuration.
	Config string
	// ListenExtra is YAML added inside the generated listen block
	// (indented two spaces), e.g. a tls section.
	ListenExtra string
	// Args are extra arguments to `writ serve`.
	Args []string
	// DataDir defaults to a fresh temp dir.
	DataDir string
}

// Writ is a running writ process.
type Writ struct {
	Bin     string
	DataDir string
	GRPC    string
	HTTP    string
	API     string
	Issuer  string
	cmd     *exec.Cmd
	stdout  *syncBuffer
	stderr  *syncBuffer
	conn    *grpc.ClientConn
	exited  chan struct{}
	exitErr error
	out     lines
}

// lines is writ's stdout, one entry per line, as it arrives.
type lines struct {
	mu      sync.Mutex
	all     []string
	next    int           // the first line the next WaitForLine looks at
	closed  bool          // stdout has ended
	changed chan struct{} // closed and replaced whenever a line arrives or stdout ends
}

func (l *lines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, line)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lines) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// errStdoutClosed: writ's stdout ended before a line matched.
var errStdoutClosed = errors.New("writ's stdout closed")

// wait returns the submatches of the first line at or after l.next that
// matches re, and moves l.next past it.
func (l *lines) wait(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := l.next; i < len(l.all); i++ {
			if m := re.FindStringSubmatch(l.all[i]); m != nil {
				l.next = i + 1
				l.mu.Unlock()
				return m, nil
			}
		}
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return nil, errStdoutClosed
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no line matching %s within %v", re, timeout)
		}
	}
}

var servingLine = regexp.MustCompile(`writ serving: grpc=(\S+) http=(\S+) api=(\S+) issuer=(\S+)`)

// Start runs `writ serve` on loopback port 0 and waits until it prints its addresses.
func Start(t T, bin string, opts Options) *Writ {
	t.Helper()
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen:\n  grpc: 127.0.0.1:0\n  http: 127.0.0.1:0\n  api: 127.0.0.1:0\n%sdata_dir: %s\n", opts.ListenExtra, dataDir)
	if len(opts.Issuers) > 0 {
		cfg.WriteString("trusted_issuers:\n")
		for _, iss := range opts.Issuers {
			fmt.Fprintf(&cfg, "  - issuer: %s\n    jwks_file: %s\n    audiences: [%s]\n    algorithms: [ES256]\n", iss.Name, iss.JWKSFile, iss.Audience)
		}
	}
	cfg.WriteString(opts.Config)
	cfgPath := filepath.Join(t.TempDir(), "writ.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &Writ{Bin: bin, DataDir: dataDir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	w.out.changed = make(chan struct{})
	w.cmd = exec.Command(bin, append([]string{"serve", "--config", cfgPath}, opts.Args...)...)
	w.cmd.Stderr = w.stderr
	pipe, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read stdout to its end before Wait closes the pipe.
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			w.stdout.Write([]byte(line + "\n"))
			w.out.add(line)
		}
		w.out.close()
	}()
	go func() {
		<-scanned
		w.exitErr = w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() { w.Stop(t) })
	m, err := w.out.wait(servingLine, 60*time.Second)
	switch {
	case errors.Is(err, errStdoutClosed):
		<-w.exited
		t.Fatalf("writ exited before serving: %v\nstderr:\n%s", w.exitErr, w.stderr.String())
	case err != nil:
		t.Fatalf("writ did not start: %v\nstderr:\n%s", err, w.stderr.String())
	}
	w.GRPC, w.HTTP, w.API, w.Issuer = m[1], m[2], m[3], m[4]
	if opts.ListenExtra == "" {
		conn, err := grpc.NewClient(w.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		w.conn = conn
	}
	return w
}

// Client is an ext_authz gRPC client connected to this writ.
func (w *Writ) Client() authv3.AuthorizationClient { return authv3.NewAuthorizationClient(w.conn) }

// Check sends one CheckRequest.
func (w *Writ) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return w.Client().Check(ctx, req)
}

// WaitForLine waits until writ prints a stdout line matching re and returns
// its submatches (m[0] is the line's match). Waits consume lines in order:
// each looks only at lines after the one the previous wait matched (Start
// waits for the serving line), so two waits for the same pattern need two
// such lines. The test fails when no line matches
// within timeout or writ's stdout ends first.
func (w *Writ) WaitForLine(t T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	m, err := w.out.wait(re, timeout)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, w.stdout.String(), w.stderr.String())
	}
	return m
}

// Signal sends sig to the writ process.
func (w *Writ) Signal(t T, sig os.Signal) {
	t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Terminate sends SIGTERM and waits for writ to exit; it returns the exit error.
func (w *Writ) Terminate(t T) error {
	t.Helper()
	select {
	case <-w.exited:
		return w.exitErr
	default:
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		w.cmd.Process.Kill()
		t.Fatalf("writ did not exit within 60s of SIGTERM\nstderr:\n%s", w.stderr.String())
	}
	return w.exitErr
}

// Stop terminates writ if it is running and closes the client connection.
func (w *Writ) Stop(t T) {
	if w.conn != nil {
		w.conn.Close()
	}
	select {
	case <-w.exited:
	default:
		w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(60 * time.Second):
			w.cmd.Process.Kill()
			<-w.exited
		}
	}
}

// Pid is the writ process's id.
func (w *Writ) Pid() int { return w.cmd.Process.Pid }

// Stdout and Stderr return what writ printed so far.
func (w *Writ) Stdout() string { return w.stdout.String() }
func (w *Writ) Stderr() string { return w.stderr.String() }

// Run runs a writ subcommand against this writ's data directory and returns stdout.
func (w *Writ) Run(t T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(w.Bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// RunStdin is Run with stdin.
func (w *Writ) RunStdin(t T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(w.Bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// ToolCall builds the CheckRequest Envoy sends for an MCP tools/call.
func ToolCall(tool string, arguments map[string]any, bearer string, ext map[string]string) *authv3.CheckRequest {
	params := map[string]any{"name": tool}
	if arguments != nil {
		params["arguments"] = arguments
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
	headers := map[string]string{
		":method": "POST", ":path": "/mcp", ":authority": "tools.internal", "content-type": "application/json",
		"mcp-method": "tools/call", "mcp-name": tool, "x-request-id": "req-1",
	}
	if bearer != "" {
		headers["authorization"] = "Bearer " + bearer
	}
	if ext == nil {
		ext = map[string]string{"resource": "mcp://tools", "tenant": "tenant-a", "mcp": "true"}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "POST", Path: "/mcp", Host: "tools.internal", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: headers, RawBody: body, Size: int64(len(body)),
		}},
		ContextExtensions: ext,
	}}
}

// Header returns the value of header key in an OK response ("" when absent).
func Header(resp *authv3.CheckResponse, key string) string {
	var hs []*corev3.HeaderValueOption
	if ok := resp.GetOkResponse(); ok != nil {
		hs = ok.GetHeaders()
	} else {
		hs = resp.GetDeniedResponse().GetHeaders()
	}
	for _, h := range hs {
		if strings.EqualFold(h.GetHeader().GetKey(), key) {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)
