package agents_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/agents"
)

// docServer is a TLS server on 127.0.0.1 serving metadata documents, and
// counting the requests it answers.
type docServer struct {
	srv  *httptest.Server
	hits atomic.Int64
	url  string // the client_id: srv.URL + "/client.json"
}

func newDocServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, url string)) *docServer {
	t.Helper()
	ds := &docServer{}
	ds.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds.hits.Add(1)
		h(w, r, ds.url)
	}))
	t.Cleanup(ds.srv.Close)
	ds.url = ds.srv.URL + "/client.json"
	return ds
}

// serveFile answers with a testdata document and the given headers.
func serveFile(t *testing.T, name string, headers ...string) func(http.ResponseWriter, *http.Request, string) {
	t.Helper()
	body := readDoc(t, name)
	return func(w http.ResponseWriter, _ *http.Request, url string) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Add(headers[i], headers[i+1])
		}
		_, _ = w.Write([]byte(strings.ReplaceAll(body, "{{URL}}", url)))
	}
}

func readDoc(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metadatadoc", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testClock is an injected clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *testClock { return &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// newDocs returns Documents that trust ds's certificate and may reach
// loopback, with clock as its clock.
func newDocs(t *testing.T, ds *docServer, clock *testClock, edit ...func(*agents.DocumentOptions)) *agents.Documents {
	t.Helper()
	pool := x509.NewCertPool()
	if ds != nil {
		pool.AddCert(ds.srv.Certificate())
	}
	o := agents.DocumentOptions{RootCAs: pool, AllowLoopback: true, Now: clock.Now}
	for _, e := range edit {
		e(&o)
	}
	return agents.NewDocuments(o)
}

func TestFetchValidDocument(t *testing.T) {
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, url string) {
		if r.Method != http.MethodGet || r.Header.Get("Accept") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		serveFile(t, "good.json", "Cache-Control", "max-age=600")(w, r, url)
	})
	docs := newDocs(t, ds, newClock())
	got, err := docs.Fetch(t.Context(), ds.url)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := agents.ClientMetadata{
		RedirectURIs:            []string{"https://agent.example.com/callback"},
		TokenEndpointAuthMethod: "private_key_jwt",
		GrantTypes:              []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		ClientName:              "Research Agent",
		ClientURI:               "https://agent.example.com",
		Scope:                   "tools.read tools.call",
		JWKSURI:                 "https://agent.example.com/jwks.json",
		SoftwareID:              "research-agent",
		SoftwareVersion:         "1.4.0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	// The caller's copy is its own: changing it does not change the cache.
	got.RedirectURIs[0] = "https://evil.example.com/"
	again, err := docs.Fetch(t.Context(), ds.url)
	if err != nil {
		t.Fatal(err)
	}
	if again.RedirectURIs[0] != "https://agent.example.com/callback" {
		t.Errorf("cached metadata changed through a returned copy: %v", again.RedirectURIs)
	}
	if n := ds.hits.Load(); n != 1 {
		t.Errorf("server hits = %d, want 1 (the second Fetch is cached)", n)
	}
}

func TestParseDocumentURL(t *testing.T) {
	tests := []struct {
		id   string
		want string // error text fragment; "" for accepted
	}{
		{"https://agent.example.com/client.json", ""},
		{"https://agent.example.com/oauth/client", ""},
		{"https://agent.example.com:443/client.json", ""},
		{"http://agent.example.com/client.json", "scheme must be https"},
		{"HTTPS://agent.example.com/client.json", "scheme must be https"},
		{"ftp://agent.example.com/client.json", "scheme must be https"},
		{"agent.example.com/client.json", "scheme must be https"},
		{"https://agent.example.com", "path required"},
		{"https://agent.example.com/", "path required"},
		{"https://agent.example.com/client.json#frag", "fragment not allowed"},
		{"https://agent.example.com/client.json?v=1", "query not allowed"},
		{"https://agent.example.com/client.json?", "query not allowed"},
		{"https://user:pw@agent.example.com/client.json", "user info not allowed"},
		{"https://user@agent.example.com/client.json", "user info not allowed"},
		{"https://agent.example.com/a/../client.json", "dot segments not allowed"},
		{"https://agent.example.com/./client.json", "dot segments not allowed"},
		{"https://agent.example.com/a/%2e%2e/client.json", "dot segments not allowed"},
		{"https://agent.example.com/a/.%2E/client.json", "dot segments not allowed"},
		{"https://agent.example.com/a/..", "dot segments not allowed"},
		{"https://agent.example.com/a/%zz", "not a URL"},
		{"https:///client.json", "no host"},
		{"https://agent.example.com/client json", "whitespace"},
		{"https://agent.example.com/client.json\n", "whitespace"},
		{"https://agent.example.com/clïent.json", "non-ASCII"},
		{"https://agent.example.com:/client.json", "empty port"},
		{"https://agent.example.com:0/client.json", "bad port"},
		{"https://agent.example.com/" + strings.Repeat("a", agents.MaxDocumentURL), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, err := agents.ParseDocumentURL(tt.id)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseDocumentURL: %v", err)
				}
				return
			}
			if !errors.Is(err, agents.ErrDocumentURL) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseDocumentURL = %v, want ErrDocumentURL with %q", err, tt.want)
			}
		})
	}
}

func TestIsDocumentClientID(t *testing.T) {
	for id, want := range map[string]bool{
		"https://agent.example.com/client.json": true,
		"https://":                              true, // meant as one; Fetch refuses it
		"http://agent.example.com/client.json":  false,
		"research-bot":                          false,
		"":                                      false,
	} {
		if got := agents.IsDocumentClientID(id); got != want {
			t.Errorf("IsDocumentClientID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestFetchRefusesPort: outside loopback tests only port 443 is fetched.
func TestFetchRefusesPort(t *testing.T) {
	docs := agents.NewDocuments(agents.DocumentOptions{
		Resolver: func(context.Context, string) ([]netip.Addr, error) {
			t.Error("resolver called for a URL that must be refused first")
			return nil, errors.New("no")
		},
	})
	for _, id := range []string{"https://agent.example.com:8443/client.json", "https://127.0.0.1:8443/client.json"} {
		_, err := docs.Fetch(t.Context(), id)
		if !errors.Is(err, agents.ErrDocumentURL) || !strings.Contains(err.Error(), "port must be 443") {
			t.Errorf("Fetch(%q) = %v, want ErrDocumentURL (port)", id, err)
		}
	}
}

// fakeResolver answers from a table and records every name asked.
type fakeResolver struct {
	mu    sync.Mutex
	table map[string][]netip.Addr
	asked []string
}

func (r *fakeResolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	if a, ok := r.table[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %q", host)
}

func (r *fakeResolver) wasAsked(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.asked {
		if h == host {
			return true
		}
	}
	return false
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

var hostileHosts = map[string][]netip.Addr{
	"metadata.test":  addrs("169.254.169.254"),
	"ten.test":       addrs("10.0.0.5"),
	"home.test":      addrs("192.168.1.1"),
	"corp.test":      addrs("172.16.4.4"),
	"mapped.test":    addrs("::ffff:10.0.0.1"),
	"cgnat.test":     addrs("100.64.0.1"),
	"zero.test":      addrs("0.0.0.0"),
	"zeronet.test":   addrs("0.1.2.3"),
	"ula.test":       addrs("fd00::1"),
	"linklocal.test": addrs("fe80::1"),
	"mcast.test":     addrs("224.0.0.1"),
	"nat64.test":     addrs("64:ff9b::a9fe:a9fe"),
	"unspec6.test":   addrs("::"),
	// One public and one private answer: the host is refused, not the
	// private address skipped.
	"rebind.test": addrs("93.184.216.34", "10.0.0.1"),
}

// TestFetchRefusesForbiddenAddresses: every non-public address is refused
// before any connection is made, whether it comes from DNS or the URL,
// even with loopback allowed. The resolver is a table: the test needs no
// network.
func TestFetchRefusesForbiddenAddresses(t *testing.T) {
	res := &fakeResolver{table: hostileHosts}
	docs := newDocs(t, nil, newClock(), func(o *agents.DocumentOptions) {
		o.Resolver = res.resolve
		o.FetchBurst = 1000 // every case below is one fetch at the same instant
	})
	ids := []string{
		"https://169.254.169.254/latest/meta-data/client.json",
		"https://10.0.0.5/client.json",
		"https://192.168.1.1/client.json",
		"https://[::ffff:10.0.0.1]/client.json",
		"https://[::ffff:169.254.169.254]/client.json",
		"https://100.64.0.1/client.json",
		"https://0.0.0.0/client.json",
		"https://[::]/client.json",
		"https://[fc00::1]/client.json",
		"https://[fe80::1]/client.json",
		"https://255.255.255.255/client.json",
	}
	for host := range hostileHosts {
		ids = append(ids, "https://"+host+"/client.json")
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			_, err := docs.Fetch(t.Context(), id)
			if !errors.Is(err, agents.ErrDocumentFetch) || !errors.Is(err, agents.ErrForbiddenAddress) {
				t.Fatalf("Fetch = %v, want ErrDocumentFetch and ErrForbiddenAddress", err)
			}
		})
	}
}

// TestFetchRefusesLoopbackByDefault: without AllowLoopback, a document on
// 127.0.0.1 (even on port 443, even by name) is refused.
func TestFetchRefusesLoopbackByDefault(t *testing.T) {
	res := &fakeResolver{table: map[string][]netip.Addr{"localhost": addrs("127.0.0.1", "::1")}}
	docs := agents.NewDocuments(agents.DocumentOptions{Resolver: res.resolve})
	for _, id := range []string{"https://127.0.0.1/client.json", "https://[::1]/client.json", "https://localhost/client.json", "https://127.1.2.3/client.json"} {
		_, err := docs.Fetch(t.Context(), id)
		if !errors.Is(err, agents.ErrForbiddenAddress) {
			t.Errorf("Fetch(%q) = %v, want ErrForbiddenAddress", id, err)
		}
	}
}

// TestFetchRefusesRedirects: a redirect is never followed, wherever it
// points; the target host is not even resolved.
func TestFetchRefusesRedirects(t *testing.T) {
	for _, target := range []string{
		"https://metadata.test/latest/meta-data/client.json",
		"https://169.254.169.254/latest/meta-data/client.json",
		"http://169.254.169.254/latest/meta-data/client.json",
		"/other.json",
	} {
		t.Run(target, func(t *testing.T) {
			ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
				http.Redirect(w, r, target, http.StatusFound)
			})
			res := &fakeResolver{table: hostileHosts}
			docs := newDocs(t, ds, newClock(), func(o *agents.DocumentOptions) { o.Resolver = res.resolve })
			_, err := docs.Fetch(t.Context(), ds.url)
			if !errors.Is(err, agents.ErrDocumentFetch) || !errors.Is(err, agents.ErrDocumentRedirect) {
				t.Fatalf("Fetch = %v, want ErrDocumentRedirect", err)
			}
			if res.wasAsked("metadata.test") {
				t.Error("the redirect target was resolved")
			}
			if n := ds.hits.Load(); n != 1 {
				t.Errorf("server hits = %d, want 1", n)
			}
		})
	}
}

func TestFetchRefusesDocuments(t *testing.T) {
	tests := []struct {
		name    string
		handler func(t *testing.T) func(http.ResponseWriter, *http.Request, string)
		want    []error
		text    string
	}{
		{"client_id mismatch", file("mismatch.json"), []error{agents.ErrDocument}, "client_id differs"},
		{"client_secret", file("secret.json"), []error{agents.ErrDocument}, "client_secret not allowed"},
		{"client_secret_expires_at", file("secret_expires.json"), []error{agents.ErrDocument}, "client_secret_expires_at not allowed"},
		{"shared-secret auth method", file("secret_method.json"), []error{agents.ErrDocument}, "shared secret"},
		{"duplicate client_id", file("duplicate.json"), []error{agents.ErrDocument}, "appears twice"},
		{"array", file("array.json"), []error{agents.ErrDocument}, "not a JSON object"},
		{"wrong type", file("wrong_type.json"), []error{agents.ErrDocument}, "redirect_uris has the wrong type"},
		{"trailing data", file("trailing.json"), []error{agents.ErrDocument}, "data after"},
		{"both jwks and jwks_uri", file("both_jwks.json"), []error{agents.ErrDocument}, "both jwks and jwks_uri"},
		{"not found", status(http.StatusNotFound), []error{agents.ErrDocumentFetch}, "status 404"},
		{"server error", status(http.StatusInternalServerError), []error{agents.ErrDocumentFetch}, "status 500"},
		{"html", func(*testing.T) func(http.ResponseWriter, *http.Request, string) {
			return func(w http.ResponseWriter, _ *http.Request, url string) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprintf(w, `{"client_id": %q}`, url)
			}
		}, []error{agents.ErrDocumentFetch}, "content type"},
		{"oversized", func(*testing.T) func(http.ResponseWriter, *http.Request, string) {
			return func(w http.ResponseWriter, _ *http.Request, url string) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"client_id": %q, "client_name": %q}`, url, strings.Repeat("a", agents.DefaultDocumentMaxBytes))
			}
		}, []error{agents.ErrDocumentFetch, agents.ErrDocumentTooLarge}, "more than 5120 bytes"},
		{"endless body", func(*testing.T) func(http.ResponseWriter, *http.Request, string) {
			return func(w http.ResponseWriter, r *http.Request, _ string) {
				w.Header().Set("Content-Type", "application/json")
				chunk := []byte(strings.Repeat(" ", 4096))
				for i := 0; i < 1<<12 && r.Context().Err() == nil; i++ { // up to 16 MiB
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}
		}, []error{agents.ErrDocumentFetch, agents.ErrDocumentTooLarge}, "more than 5120 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDocServer(t, tt.handler(t))
			docs := newDocs(t, ds, newClock())
			_, err := docs.Fetch(t.Context(), ds.url)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Fetch = %v, want %v", err, want)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Fetch = %v, want text %q", err, tt.text)
			}
			if docs.Len() != 0 {
				t.Errorf("a refused document was cached")
			}
		})
	}
}

func file(name string) func(t *testing.T) func(http.ResponseWriter, *http.Request, string) {
	return func(t *testing.T) func(http.ResponseWriter, *http.Request, string) { return serveFile(t, name) }
}

func status(code int) func(*testing.T) func(http.ResponseWriter, *http.Request, string) {
	return func(*testing.T) func(http.ResponseWriter, *http.Request, string) {
		return func(w http.ResponseWriter, _ *http.Request, _ string) { http.Error(w, "no", code) }
	}
}

// TestFetchSizeLimitBoundary: a document of exactly MaxBytes is accepted.
func TestFetchSizeLimitBoundary(t *testing.T) {
	ds := newDocServer(t, func(w http.ResponseWriter, _ *http.Request, url string) {
		w.Header().Set("Content-Type", "application/json")
		head := fmt.Sprintf(`{"client_id": %q, "client_name": "`, url)
		fmt.Fprint(w, head+strings.Repeat("a", 200-len(head)-2)+`"}`)
	})
	docs := newDocs(t, ds, newClock(), func(o *agents.DocumentOptions) { o.MaxBytes = 200 })
	m, err := docs.Fetch(t.Context(), ds.url)
	if err != nil {
		t.Fatalf("Fetch of a 200-byte document with MaxBytes 200: %v", err)
	}
	if len(m.ClientName) == 0 {
		t.Error("client_name lost")
	}
}

// TestFetchCaching: cache headers decide how long a document is reused,
// clamped to [MinTTL, MaxTTL]; server hits prove it.
func TestFetchCaching(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		// fetches after which the clock is advanced by step, and the hit
		// count expected after each fetch.
		steps []time.Duration
		hits  []int64
	}{
		{"max-age respected", []string{"Cache-Control", "public, max-age=120"},
			[]time.Duration{0, 119 * time.Second, 2 * time.Second}, []int64{1, 1, 2}},
		{"max-age in a second header line", []string{"Cache-Control", "public", "Cache-Control", "max-age=300"},
			[]time.Duration{0, 299 * time.Second, time.Second}, []int64{1, 1, 2}},
		{"no-store not cached", []string{"Cache-Control", "no-store"},
			[]time.Duration{0, 0, 0}, []int64{1, 2, 3}},
		{"no-cache not cached", []string{"Cache-Control", "max-age=600, no-cache"},
			[]time.Duration{0, 0}, []int64{1, 2}},
		{"max-age below MinTTL clamped up", []string{"Cache-Control", "max-age=1"},
			[]time.Duration{0, 59 * time.Second, time.Second}, []int64{1, 1, 2}},
		{"max-age=0 clamped up", []string{"Cache-Control", "max-age=0"},
			[]time.Duration{0, 30 * time.Second, 30 * time.Second}, []int64{1, 1, 2}},
		{"max-age above MaxTTL clamped down", []string{"Cache-Control", "max-age=31536000"},
			[]time.Duration{0, 23 * time.Hour, time.Hour}, []int64{1, 1, 2}},
		{"malformed max-age not cached", []string{"Cache-Control", "max-age=soon"},
			[]time.Duration{0, 0}, []int64{1, 2}},
		{"no headers: default TTL", nil,
			[]time.Duration{0, 4*time.Minute + 59*time.Second, time.Second}, []int64{1, 1, 2}},
		{"Expires relative to Date", []string{"Date", "Fri, 02 Jan 2026 03:04:05 GMT", "Expires", "Fri, 02 Jan 2026 03:14:05 GMT"},
			[]time.Duration{0, 9*time.Minute + 59*time.Second, time.Second}, []int64{1, 1, 2}},
		{"invalid Expires not cached", []string{"Expires", "0"},
			[]time.Duration{0, 0}, []int64{1, 2}},
		{"max-age wins over Expires", []string{"Expires", "Fri, 02 Jan 2026 05:04:05 GMT", "Cache-Control", "max-age=120"},
			[]time.Duration{0, 2 * time.Minute}, []int64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDocServer(t, serveFile(t, "minimal.json", tt.headers...))
			clock := newClock()
			docs := newDocs(t, ds, clock)
			for i, step := range tt.steps {
				clock.Advance(step)
				if _, err := docs.Fetch(t.Context(), ds.url); err != nil {
					t.Fatalf("fetch %d: %v", i, err)
				}
				if got := ds.hits.Load(); got != tt.hits[i] {
					t.Fatalf("after fetch %d: server hits = %d, want %d", i, got, tt.hits[i])
				}
			}
		})
	}
}

// TestFetchFailureNotCached: a failed fetch is retried on the next call.
func TestFetchFailureNotCached(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, url string) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serveFile(t, "minimal.json", "Cache-Control", "max-age=600")(w, r, url)
	})
	docs := newDocs(t, ds, newClock())
	for i := range 2 {
		if _, err := docs.Fetch(t.Context(), ds.url); !errors.Is(err, agents.ErrDocumentFetch) {
			t.Fatalf("fetch %d = %v, want ErrDocumentFetch", i, err)
		}
	}
	fail.Store(false)
	if _, err := docs.Fetch(t.Context(), ds.url); err != nil {
		t.Fatalf("fetch after recovery: %v", err)
	}
	if n := ds.hits.Load(); n != 3 {
		t.Errorf("server hits = %d, want 3 (failures are not cached)", n)
	}
}

// TestFetchConcurrentShareOneRequest: callers fetching one URL at once
// share one request, even for a document that may not be cached.
func TestFetchConcurrentShareOneRequest(t *testing.T) {
	const callers = 8
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, url string) {
		once.Do(func() { close(entered) })
		<-release
		serveFile(t, "minimal.json", "Cache-Control", "no-store")(w, r, url)
	})
	docs := newDocs(t, ds, newClock())
	joined := make(chan struct{}, callers)
	agents.SetDocumentsJoined(docs, func() { joined <- struct{}{} })

	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := docs.Fetch(t.Context(), ds.url)
			errs <- err
		}()
	}
	<-entered
	for range callers {
		<-joined
	}
	close(release)
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("Fetch: %v", err)
		}
	}
	if n := ds.hits.Load(); n != 1 {
		t.Errorf("server hits = %d, want 1", n)
	}
	// Not cached (no-store): the next fetch is a new request.
	agents.SetDocumentsJoined(docs, nil)
	if _, err := docs.Fetch(t.Context(), ds.url); err != nil {
		t.Fatal(err)
	}
	if n := ds.hits.Load(); n != 2 {
		t.Errorf("server hits = %d, want 2", n)
	}
}

// TestFetchCallerCancelled: a caller that goes away gets its context's
// error and does not fail the request others share.
func TestFetchCallerCancelled(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, url string) {
		close(entered)
		<-release
		serveFile(t, "minimal.json")(w, r, url)
	})
	docs := newDocs(t, ds, newClock())
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := docs.Fetch(ctx, ds.url)
		first <- err
	}()
	<-entered
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) || !errors.Is(err, agents.ErrDocumentFetch) {
		t.Errorf("cancelled Fetch = %v, want ErrDocumentFetch and context.Canceled", err)
	}
	second := make(chan error, 1)
	go func() {
		_, err := docs.Fetch(t.Context(), ds.url)
		second <- err
	}()
	close(release)
	if err := <-second; err != nil {
		t.Errorf("second Fetch: %v", err)
	}
	if n := ds.hits.Load(); n != 1 {
		t.Errorf("server hits = %d, want 1 (the request survived its first caller)", n)
	}
}

// TestFetchCacheBounded: the least recently used document is evicted.
func TestFetchCacheBounded(t *testing.T) {
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id": %q}`, "https://"+r.Host+r.URL.Path)
	})
	docs := newDocs(t, ds, newClock(), func(o *agents.DocumentOptions) { o.MaxEntries = 2 })
	a, b, c := ds.srv.URL+"/a", ds.srv.URL+"/b", ds.srv.URL+"/c"
	for _, id := range []string{a, b, a, c} { // b is now least recently used
		if _, err := docs.Fetch(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if docs.Len() != 2 {
		t.Errorf("Len = %d, want 2", docs.Len())
	}
	if n := ds.hits.Load(); n != 3 {
		t.Fatalf("hits = %d, want 3", n)
	}
	for _, id := range []string{a, c} {
		if _, err := docs.Fetch(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if n := ds.hits.Load(); n != 3 {
		t.Errorf("hits = %d after refetching cached a and c, want 3", n)
	}
	if _, err := docs.Fetch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if n := ds.hits.Load(); n != 4 {
		t.Errorf("hits = %d after refetching evicted b, want 4", n)
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34":        true,
		"8.8.8.8":              true,
		"2606:4700:4700::1111": true,
		"::ffff:8.8.8.8":       true,
		"169.254.169.254":      false,
		"10.0.0.5":             false,
		"172.31.255.255":       false,
		"172.32.0.1":           true,
		"192.168.1.1":          false,
		"100.64.0.1":           false,
		"100.127.255.255":      false,
		"100.128.0.1":          true,
		"0.0.0.0":              false,
		"0.1.2.3":              false,
		"127.0.0.1":            false,
		"::1":                  false,
		"::":                   false,
		"::ffff:10.0.0.1":      false,
		"::ffff:127.0.0.1":     false,
		"fc00::1":              false,
		"fd12:3456::1":         false,
		"fe80::1":              false,
		"ff02::1":              false,
		"224.0.0.251":          false,
		"255.255.255.255":      false,
		"240.0.0.1":            false,
		"64:ff9b::a9fe:a9fe":   false,
		"2002:a9fe:a9fe::1":    false,
		"2001:db8::1":          false,
		"198.18.0.1":           false,
		"192.0.0.170":          false,
	} {
		if got := agents.PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// FuzzParseDocument: no input panics, and an accepted document always
// names the URL, carries no shared secret and reads as one JSON object.
func FuzzParseDocument(f *testing.F) {
	const id = "https://agent.example.com/client.json"
	entries, err := os.ReadDir(filepath.Join("testdata", "metadatadoc"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(strings.ReplaceAll(readDoc(f, e.Name()), "{{URL}}", id))
	}
	f.Add(`{"client_id":"` + id + `","client_id":"` + id + `"}`)
	f.Add(`{"client_id":"` + id + `","token_endpoint_auth_method":"client_secret_post"}`)
	f.Fuzz(func(t *testing.T, body string) {
		m, err := agents.ParseDocument(id, []byte(body))
		if err != nil {
			if !errors.Is(err, agents.ErrDocument) {
				t.Fatalf("error %v does not wrap ErrDocument", err)
			}
			return
		}
		if strings.HasPrefix(m.TokenEndpointAuthMethod, "client_secret") {
			t.Fatalf("accepted shared-secret method %q", m.TokenEndpointAuthMethod)
		}
		if strings.Contains(body, `"client_secret"`) && !strings.Contains(body, `\`) {
			t.Fatalf("accepted a document with client_secret: %s", body)
		}
	})
}

func ExampleDocuments_Fetch() {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, `{"client_id": "https://%s/client.json", "client_name": "Research Agent",
			"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://agent.example.com/jwks.json"}`, r.Host)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	// AllowLoopback and RootCAs only because the example serves itself.
	docs := agents.NewDocuments(agents.DocumentOptions{AllowLoopback: true, RootCAs: pool})
	clientID := srv.URL + "/client.json"
	fmt.Println(agents.IsDocumentClientID(clientID))
	meta, err := docs.Fetch(context.Background(), clientID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(meta.ClientName, meta.TokenEndpointAuthMethod)

	_, err = docs.Fetch(context.Background(), "https://169.254.169.254/latest/meta-data/client.json")
	fmt.Println(errors.Is(err, agents.ErrForbiddenAddress))
	// Output:
	// true
	// Research Agent private_key_jwt
	// true
}

// BenchmarkFetchCached is a Fetch answered from the cache: the cost the
// token endpoint pays per request for a metadata-document client.
func BenchmarkFetchCached(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, strings.ReplaceAll(readDoc(b, "good.json"), "{{URL}}", "https://"+r.Host+r.URL.Path))
	}))
	b.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	docs := agents.NewDocuments(agents.DocumentOptions{AllowLoopback: true, RootCAs: pool})
	id := srv.URL + "/client.json"
	if _, err := docs.Fetch(b.Context(), id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := docs.Fetch(b.Context(), id); err != nil {
			b.Fatal(err)
		}
	}
}

// Network fetches are bounded over all URLs: a caller naming ever new URLs
// as client_id gets refusals, not fetches, once the bucket is dry, while
// cached documents are served all the same; the bucket refills with time.
func TestFetchRateBounded(t *testing.T) {
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id": %q}`, "https://"+r.Host+r.URL.Path)
	})
	clock := newClock()
	docs := newDocs(t, ds, clock, func(o *agents.DocumentOptions) { o.FetchesPerSecond, o.FetchBurst = 1, 2 })
	for _, p := range []string{"/a", "/b"} {
		if _, err := docs.Fetch(t.Context(), ds.srv.URL+p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := docs.Fetch(t.Context(), ds.srv.URL+"/c"); !errors.Is(err, agents.ErrDocumentFetch) {
		t.Fatalf("third new URL at once: %v, want ErrDocumentFetch", err)
	}
	if n := ds.hits.Load(); n != 2 {
		t.Fatalf("hits = %d, want 2: the refused fetch reached the network", n)
	}
	if _, err := docs.Fetch(t.Context(), ds.srv.URL+"/a"); err != nil {
		t.Fatalf("a cached document while the bucket is dry: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := docs.Fetch(t.Context(), ds.srv.URL+"/c"); err != nil {
		t.Fatalf("after the bucket refilled: %v", err)
	}
}
