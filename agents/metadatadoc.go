package agents

import (
	"bytes"
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"
)

// Errors of client ID metadata documents. Every error Fetch returns wraps
// exactly one of ErrDocumentURL, ErrDocumentFetch or ErrDocument; the
// finer ones below are wrapped beside ErrDocumentFetch.
var (
	// ErrDocumentURL is a client_id that is not an acceptable metadata
	// document URL (not https, no path, a fragment, a query, user info,
	// dot segments, a port other than 443).
	ErrDocumentURL = errors.New("agents: client_id is not an acceptable metadata document URL")
	// ErrDocumentFetch is a metadata document that could not be fetched:
	// the network, a status other than 200, a redirect, a refused address,
	// a wrong content type, an oversized body.
	ErrDocumentFetch = errors.New("agents: client ID metadata document not fetched")
	// ErrDocument is a fetched metadata document whose content writ
	// refuses: not a JSON object, a client_id other than its URL, a shared
	// secret.
	ErrDocument = errors.New("agents: client ID metadata document refused")
	// ErrForbiddenAddress is a metadata document host that resolves to an
	// address writ never fetches from: loopback, private, link-local
	// (cloud metadata services), shared (CGNAT), multicast, unspecified or
	// reserved.
	ErrForbiddenAddress = errors.New("agents: metadata document host address not allowed")
	// ErrDocumentRedirect is a metadata document URL answered with a
	// redirect. Redirects are never followed.
	ErrDocumentRedirect = errors.New("agents: metadata document URL redirects")
	// ErrDocumentTooLarge is a metadata document larger than
	// DocumentOptions.MaxBytes.
	ErrDocumentTooLarge = errors.New("agents: metadata document too large")
)

// Defaults of DocumentOptions.
const (
	DefaultDocumentMaxBytes   = 5120
	DefaultDocumentTimeout    = 5 * time.Second
	DefaultDocumentMinTTL     = time.Minute
	DefaultDocumentMaxTTL     = 24 * time.Hour
	DefaultDocumentTTL        = 5 * time.Minute
	DefaultDocumentMaxEntries = 1000
	// DefaultDocumentFetchesPerSecond and DefaultDocumentFetchBurst bound
	// network fetches of documents.
	DefaultDocumentFetchesPerSecond = 10
	DefaultDocumentFetchBurst       = 20
	// MaxDocumentURL is the longest client_id accepted as a metadata
	// document URL, in bytes.
	MaxDocumentURL = 2048
)

// DocumentOptions configures the fetching of client ID metadata documents.
// The zero value is usable.
type DocumentOptions struct {
	// MaxBytes caps a document's size; larger ones are refused. Default
	// 5120 (5 KiB).
	MaxBytes int
	// Timeout bounds one fetch, connection and body included. Default 5s.
	Timeout time.Duration
	// MinTTL and MaxTTL clamp how long a fetched document is reused,
	// whatever its Cache-Control or Expires header says. Defaults 1m and
	// 24h.
	MinTTL, MaxTTL time.Duration
	// DefaultTTL is how long a document without cache headers is reused.
	// Default 5m.
	DefaultTTL time.Duration
	// MaxEntries bounds the number of documents kept; the least recently
	// used goes first. Default 1000.
	MaxEntries int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// AllowLoopback permits documents served from 127.0.0.0/8 and ::1, on
	// any port. For tests only: every other private address stays refused.
	AllowLoopback bool
	// Resolver looks up a host's addresses; net.DefaultResolver when nil.
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)
	// RootCAs are the certificate authorities trusted for document hosts;
	// the system's when nil.
	RootCAs *x509.CertPool
	// FetchesPerSecond and FetchBurst bound the fetches that go to the
	// network (cache misses), over all URLs: a caller naming ever new URLs
	// as client_id cannot turn writ into a fetching machine. Past the
	// bound, Fetch fails with ErrDocumentFetch until the bucket refills;
	// cached documents are served all the same. Defaults 10 and 20.
	FetchesPerSecond float64
	FetchBurst       int
}

func (o DocumentOptions) withDefaults() DocumentOptions {
	if o.FetchesPerSecond <= 0 {
		o.FetchesPerSecond = DefaultDocumentFetchesPerSecond
	}
	if o.FetchBurst <= 0 {
		o.FetchBurst = DefaultDocumentFetchBurst
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultDocumentMaxBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultDocumentTimeout
	}
	if o.MinTTL <= 0 {
		o.MinTTL = DefaultDocumentMinTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultDocumentMaxTTL
	}
	if o.MaxTTL < o.MinTTL {
		o.MaxTTL = o.MinTTL
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultDocumentTTL
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultDocumentMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resolver == nil {
		o.Resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return o
}

// Documents fetches, validates and caches client ID metadata documents
// (draft-ietf-oauth-client-id-metadata-document): an agent that uses an
// https URL as its client_id publishes its client metadata at that URL.
//
// Fetching a URL an agent chose is a server-side request forgery risk, so
// Documents resolves the host itself and refuses, at dial time, every
// address that is not public (see ErrForbiddenAddress); it connects only to
// the address it checked, so a second DNS answer cannot move it, and it
// never follows a redirect (the draft asks for a 200 and nothing else).
//
// Successful fetches are cached for their Cache-Control max-age (or
// Expires), clamped to [MinTTL, MaxTTL]; no-store and no-cache documents
// are not cached, and failures never are. Concurrent fetches of one URL
// share one request. A Documents is safe for concurrent use.
type Documents struct {
	o      DocumentOptions
	client *http.Client
	group  singleflight.Group

	mu    sync.Mutex
	lru   *list.List // of *docEntry, most recently used first
	index map[string]*list.Element

	// joined, when set, is called once a Fetch has joined a shared
	// request. Tests use it to know every caller is waiting.
	joined  func()
	fetches *rate.Limiter // network fetches, over all URLs
}

type docEntry struct {
	id      string
	meta    ClientMetadata
	expires time.Time
}

// NewDocuments returns a Documents with o's settings.
func NewDocuments(o DocumentOptions) *Documents {
	o = o.withDefaults()
	d := &Documents{o: o, lru: list.New(), index: map[string]*list.Element{},
		fetches: rate.NewLimiter(rate.Limit(o.FetchesPerSecond), o.FetchBurst)}
	dialer := &net.Dialer{Timeout: o.Timeout, Control: d.control}
	transport := &http.Transport{
		// Never a proxy: the address check must see the real peer.
		Proxy:                  nil,
		DialContext:            d.dialContext(dialer),
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      false,
	}
	d.client = &http.Client{
		Transport: transport,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return ErrDocumentRedirect
		},
	}
	return d
}

// HTTPClient is the client Documents fetches with: https on port 443 to
// public addresses only, checked at dial time, no proxy, no redirects. Use
// it for other URLs an agent publishes about itself, such as a jwks_uri.
func (d *Documents) HTTPClient() *http.Client { return d.client }

// IsDocumentClientID reports whether id is meant as a client ID metadata
// document URL, that is, starts with "https://". It does not validate the
// URL: Fetch does, and refuses a malformed one with ErrDocumentURL.
func IsDocumentClientID(id string) bool {
	return strings.HasPrefix(id, "https://")
}

// Fetch returns the client metadata published at clientID, from the cache
// when a fresh copy is there. The returned metadata is the caller's own
// copy.
func (d *Documents) Fetch(ctx context.Context, clientID string) (ClientMetadata, error) {
	u, err := d.parseURL(clientID)
	if err != nil {
		return ClientMetadata{}, err
	}
	if m, ok := d.cached(clientID); ok {
		return m, nil
	}
	ch := d.group.DoChan(clientID, func() (any, error) {
		if !d.fetches.AllowN(d.o.Now(), 1) {
			return nil, fmt.Errorf("%w: too many document fetches; retry later", ErrDocumentFetch)
		}
		// One caller going away must not fail the others sharing this
		// request: the request has its own deadline instead.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.Timeout)
		defer cancel()
		return d.fetch(fctx, clientID, u)
	})
	if d.joined != nil {
		d.joined()
	}
	select {
	case <-ctx.Done():
		return ClientMetadata{}, fmt.Errorf("%w: %w", ErrDocumentFetch, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return ClientMetadata{}, res.Err
		}
		return res.Val.(ClientMetadata).clone(), nil
	}
}

// fetch performs one GET of the document, validates it and caches it.
func (d *Documents) fetch(ctx context.Context, clientID string, u *url.URL) (ClientMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return ClientMetadata{}, fmt.Errorf("%w: %v", ErrDocumentURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return ClientMetadata{}, fmt.Errorf("%w: %w", ErrDocumentFetch, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ClientMetadata{}, fmt.Errorf("%w: status %d", ErrDocumentFetch, resp.StatusCode)
	}
	if !isJSONMediaType(resp.Header.Get("Content-Type")) {
		return ClientMetadata{}, fmt.Errorf("%w: content type is not JSON", ErrDocumentFetch)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(d.o.MaxBytes)+1))
	if err != nil {
		return ClientMetadata{}, fmt.Errorf("%w: reading body: %v", ErrDocumentFetch, err)
	}
	if len(body) > d.o.MaxBytes {
		return ClientMetadata{}, fmt.Errorf("%w: %w: more than %d bytes", ErrDocumentFetch, ErrDocumentTooLarge, d.o.MaxBytes)
	}
	m, err := ParseDocument(clientID, body)
	if err != nil {
		return ClientMetadata{}, err
	}
	if ttl, ok := d.ttl(resp.Header); ok {
		d.store(clientID, m, ttl)
	}
	return m, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// parseURL checks clientID against the draft's rules for a client
// identifier URL, and writ's own: https on port 443 only, no query.
func (d *Documents) parseURL(clientID string) (*url.URL, error) {
	u, err := ParseDocumentURL(clientID)
	if err != nil {
		return nil, err
	}
	if p := u.Port(); p != "" && p != "443" {
		addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
		if !d.o.AllowLoopback || err != nil || !addr.Unmap().IsLoopback() {
			return nil, fmt.Errorf("%w: port must be 443", ErrDocumentURL)
		}
	}
	return u, nil
}

// ParseDocumentURL checks that clientID can name a client ID metadata
// document: an https URL with a host and a path other than "/", no
// fragment, no user info, no query, no "." or ".." path segments (also
// percent-encoded), at most MaxDocumentURL bytes. The port rule
// (443 only) is Fetch's.
func ParseDocumentURL(clientID string) (*url.URL, error) {
	if len(clientID) > MaxDocumentURL {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrDocumentURL, MaxDocumentURL)
	}
	if !strings.HasPrefix(clientID, "https://") {
		return nil, fmt.Errorf("%w: scheme must be https", ErrDocumentURL)
	}
	if strings.Contains(clientID, "#") {
		return nil, fmt.Errorf("%w: fragment not allowed", ErrDocumentURL)
	}
	if strings.Contains(clientID, "?") {
		return nil, fmt.Errorf("%w: query not allowed", ErrDocumentURL)
	}
	for _, r := range clientID {
		if r <= ' ' || r >= 0x7f {
			return nil, fmt.Errorf("%w: whitespace, control or non-ASCII character", ErrDocumentURL)
		}
	}
	u, err := url.Parse(clientID)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrDocumentURL)
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("%w: user info not allowed", ErrDocumentURL)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host", ErrDocumentURL)
	case u.Port() == "" && strings.HasSuffix(u.Host, ":"):
		return nil, fmt.Errorf("%w: empty port", ErrDocumentURL)
	case u.Opaque != "":
		return nil, fmt.Errorf("%w: not a hierarchical URL", ErrDocumentURL)
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		return nil, fmt.Errorf("%w: path required", ErrDocumentURL)
	}
	for seg := range strings.SplitSeq(path, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, fmt.Errorf("%w: bad percent-encoding", ErrDocumentURL)
		}
		if dec == "." || dec == ".." {
			return nil, fmt.Errorf("%w: dot segments not allowed", ErrDocumentURL)
		}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: bad port", ErrDocumentURL)
		}
	}
	return u, nil
}

// Auth methods a metadata document may not name: they all rest on a shared
// secret, which a client that has never registered cannot have.
var sharedSecretMethods = []string{"client_secret_basic", "client_secret_post", "client_secret_jwt"}

// ParseDocument validates a fetched metadata document for clientID: a JSON
// object with no duplicate member names, whose client_id is exactly
// clientID (simple string comparison, no normalisation), with no
// client_secret or client_secret_expires_at and no token endpoint
// authentication method based on a shared secret.
func ParseDocument(clientID string, body []byte) (ClientMetadata, error) {
	members, err := objectMembers(body)
	if err != nil {
		return ClientMetadata{}, err
	}
	raw, ok := members["client_id"]
	if !ok {
		return ClientMetadata{}, fmt.Errorf("%w: no client_id", ErrDocument)
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return ClientMetadata{}, fmt.Errorf("%w: client_id is not a string", ErrDocument)
	}
	if id != clientID {
		return ClientMetadata{}, fmt.Errorf("%w: client_id differs from the document URL", ErrDocument)
	}
	for _, name := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := members[name]; ok {
			return ClientMetadata{}, fmt.Errorf("%w: %s not allowed", ErrDocument, name)
		}
	}
	var m ClientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return ClientMetadata{}, fmt.Errorf("%w: %s has the wrong type", ErrDocument, te.Field)
		}
		return ClientMetadata{}, fmt.Errorf("%w: not valid JSON", ErrDocument)
	}
	if slices.Contains(sharedSecretMethods, m.TokenEndpointAuthMethod) || strings.HasPrefix(m.TokenEndpointAuthMethod, "client_secret") {
		return ClientMetadata{}, fmt.Errorf("%w: token_endpoint_auth_method %q rests on a shared secret", ErrDocument, m.TokenEndpointAuthMethod)
	}
	if len(m.JWKS) > 0 && m.JWKSURI != "" {
		return ClientMetadata{}, fmt.Errorf("%w: both jwks and jwks_uri", ErrDocument)
	}
	return m, nil
}

// objectMembers reads body as one JSON object and returns its members,
// refusing anything else, trailing data and duplicate names (which
// decoders resolve differently, so a duplicate client_id could be read
// two ways).
func objectMembers(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: not valid JSON", ErrDocument)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrDocument)
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: not valid JSON", ErrDocument)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: not valid JSON", ErrDocument)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: not valid JSON", ErrDocument)
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrDocument, name)
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON", ErrDocument)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrDocument)
	}
	return members, nil
}

// ttl is how long a document served with h may be reused; false when it
// must not be stored at all.
func (d *Documents) ttl(h http.Header) (time.Duration, bool) {
	ttl, known := time.Duration(0), false
	for _, line := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, false
			case "max-age":
				secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
				if err != nil || secs < 0 {
					return 0, false // a malformed max-age is stale (RFC 9111 section 4.2.1)
				}
				if !known {
					ttl, known = time.Duration(min(secs, int64(d.o.MaxTTL/time.Second)+1))*time.Second, true
				}
			}
		}
	}
	if !known {
		if exp := h.Get("Expires"); exp != "" {
			t, err := http.ParseTime(exp)
			if err != nil {
				return 0, false // an invalid Expires is in the past (RFC 9111 section 5.3)
			}
			base := d.o.Now()
			if date, err := http.ParseTime(h.Get("Date")); err == nil {
				base = date
			}
			ttl, known = t.Sub(base), true
		}
	}
	if !known {
		ttl = d.o.DefaultTTL
	}
	return max(d.o.MinTTL, min(ttl, d.o.MaxTTL)), true
}

func (d *Documents) cached(id string) (ClientMetadata, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	el, ok := d.index[id]
	if !ok {
		return ClientMetadata{}, false
	}
	e := el.Value.(*docEntry)
	if !d.o.Now().Before(e.expires) {
		d.lru.Remove(el)
		delete(d.index, id)
		return ClientMetadata{}, false
	}
	d.lru.MoveToFront(el)
	return e.meta.clone(), true
}

func (d *Documents) store(id string, m ClientMetadata, ttl time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := &docEntry{id: id, meta: m.clone(), expires: d.o.Now().Add(ttl)}
	if el, ok := d.index[id]; ok {
		el.Value = e
		d.lru.MoveToFront(el)
		return
	}
	d.index[id] = d.lru.PushFront(e)
	for d.lru.Len() > d.o.MaxEntries {
		last := d.lru.Back()
		d.lru.Remove(last)
		delete(d.index, last.Value.(*docEntry).id)
	}
}

// Len is the number of documents cached, fresh or not yet evicted.
func (d *Documents) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.Len()
}

func (m ClientMetadata) clone() ClientMetadata {
	m.RedirectURIs = slices.Clone(m.RedirectURIs)
	m.GrantTypes = slices.Clone(m.GrantTypes)
	m.ResponseTypes = slices.Clone(m.ResponseTypes)
	m.Contacts = slices.Clone(m.Contacts)
	m.JWKS = slices.Clone(m.JWKS)
	return m
}

// dialContext resolves the host itself, refuses it when any of its
// addresses is not allowed, and dials only the addresses it checked: a
// second DNS answer (rebinding) never reaches the dialer.
func (d *Documents) dialContext(dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else {
			addrs, err = d.o.Resolver(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolving the document host: %w", err)
			}
		}
		if len(addrs) == 0 {
			return nil, errors.New("the document host has no address")
		}
		for _, a := range addrs {
			if err := d.checkAddr(a, port); err != nil {
				return nil, err
			}
		}
		var last error
		for _, a := range addrs {
			conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			last = err
		}
		return nil, last
	}
}

// control checks the address a socket is about to connect to, whatever
// produced it.
func (d *Documents) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	return d.checkAddr(ap.Addr(), strconv.Itoa(int(ap.Port())))
}

func (d *Documents) checkAddr(a netip.Addr, port string) error {
	a = a.Unmap()
	if d.o.AllowLoopback && a.IsLoopback() {
		return nil
	}
	if port != "443" {
		return fmt.Errorf("%w: port %s", ErrForbiddenAddress, port)
	}
	if !PublicAddr(a) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, a)
	}
	return nil
}

// Address ranges that are never fetched from, beyond what netip's
// predicates cover.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, and broadcast
	netip.MustParsePrefix("::/96"),              // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64: reaches any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local NAT64
	netip.MustParsePrefix("100::/64"),           // discard
	netip.MustParsePrefix("2001::/32"),          // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("2002::/16"),          // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("fec0::/10"),          // site-local (deprecated)
	netip.MustParsePrefix("3fff::/20"),          // documentation
	netip.MustParsePrefix("5f00::/16"),          // segment routing SIDs
	netip.MustParsePrefix("2001:10::/28"),       // ORCHID
	netip.MustParsePrefix("2001:20::/28"),       // ORCHIDv2
	netip.MustParsePrefix("ff00::/8"),           // multicast
	netip.MustParsePrefix("fc00::/7"),           // unique local
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local, cloud metadata
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// PublicAddr reports whether writ may fetch a metadata document from a:
// a global unicast address outside every private, shared, link-local,
// loopback, documentation and reserved range. IPv4-mapped IPv6 addresses
// are judged as the IPv4 address they carry.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() ||
		a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return false
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
