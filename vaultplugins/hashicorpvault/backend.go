package hashicorpvault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/writ-dev/writ/vaultplugins"
)

// Name is the backend kind Describe reports.
const Name = "hashicorp-vault"

// Version is the backend implementation's version.
const Version = "1.0.0"

// Custom metadata keys a secret may carry (KV v2 custom metadata is per
// secret, shared by all its versions).
const (
	// MetaExpiresAt is an RFC 3339 time after which the secret is not
	// served; it becomes Credential.ExpiresAt.
	MetaExpiresAt = "expires_at"
	// MetaHeader overrides Config.Header for this secret.
	MetaHeader = "header"
	// MetaFormat overrides Config.Format for this secret.
	MetaFormat = "format"
)

// Backend reads credentials from a HashiCorp Vault KV v2 mount. It is safe
// for concurrent use.
type Backend struct {
	cfg     Config
	base    *vault.Client // no token; AppRole logins and the template for sessions
	log     *slog.Logger
	refresh chan struct{} // a one-slot lock around login and renewal that honours ctx

	mu   sync.Mutex
	sess *session // nil until the first AppRole login
}

// session is one Vault token and the client that carries it. A session is
// never modified: a renewal or login replaces it.
type session struct {
	client    *vault.Client
	gen       uint64
	renewAt   time.Time // zero: never renewed (a fixed token, or no lease)
	expiresAt time.Time // zero: unknown
	renewable bool
}

// New returns a Backend for cfg. It does not contact Vault: an AppRole
// backend logs in on its first Fetch.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	vc := &vault.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: transport,
			// Vault's client follows redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:      cfg.Timeout,
		MaxRetries:   0, // writ's caller decides on retries; a failure fails closed
		CloneHeaders: true,
	}
	if cfg.CACert != "" {
		if err := vc.ConfigureTLS(&vault.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("%w: hashicorp vault: CA certificate: %v", vaultplugins.ErrInvalidConfig, err)
		}
	}
	base, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("%w: hashicorp vault: client: %v", vaultplugins.ErrInvalidConfig, err)
	}
	// NewClient reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the process environment; only Config counts.
	base.ClearToken()
	base.SetHeaders(http.Header{})
	if cfg.Namespace != "" {
		base.SetNamespace(cfg.Namespace)
	}
	b := &Backend{cfg: cfg, base: base, log: cfg.Logger, refresh: make(chan struct{}, 1)}
	if cfg.Token != "" {
		s, err := b.newSession(cfg.Token, 0, 0, false)
		if err != nil {
			return nil, err
		}
		b.sess = s
	}
	return b, nil
}

// Describe implements vaultplugins.Backend.
func (b *Backend) Describe(ctx context.Context) (vaultplugins.Description, error) {
	auth := "token"
	if b.approle() {
		auth = "approle"
	}
	return vaultplugins.Description{
		Name:    Name,
		Version: Version,
		Summary: fmt.Sprintf("HashiCorp Vault KV v2 at %s, mount %q, %s auth", b.cfg.Address, b.cfg.Mount, auth),
	}, nil
}

// Fetch implements vaultplugins.Backend. req.Ref is path[#field][@version]
// (see Ref). Errors: ErrInvalidRequest for a bad reference; ErrNotFound for
// a missing secret, version or field, or a deleted or destroyed version;
// ErrDenied for a 403 (after one fresh AppRole login) or a refused login;
// ErrRevoked once expires_at has passed; ErrUnavailable for 5xx, 429 and
// network failures.
func (b *Backend) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	ref, err := ParseRef(req.Ref)
	if err != nil {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrInvalidRequest, err)
	}
	s, err := b.session(ctx)
	if err != nil {
		return vaultplugins.Credential{}, err
	}
	secret, err := b.read(ctx, s, ref)
	if status(err) == http.StatusForbidden && b.approle() && !b.tokenValid(ctx, s) {
		// The token expired or was revoked: log in once more and retry
		// once. A 403 for a valid token is a policy denial and costs no
		// login.
		b.log.DebugContext(ctx, "vault token no longer valid; logging in again", "mount", b.cfg.Mount)
		if s, err = b.renew(ctx, s, true); err != nil {
			return vaultplugins.Credential{}, err
		}
		secret, err = b.read(ctx, s, ref)
	}
	if err != nil {
		return vaultplugins.Credential{}, b.mapError(ctx, err, "read "+b.cfg.Mount+"/data/"+ref.String())
	}
	return b.credential(ref, secret)
}

// tokenValid reports whether Vault still accepts s's token
// (auth/token/lookup-self). Only a 401 or 403 answer makes it invalid.
func (b *Backend) tokenValid(ctx context.Context, s *session) bool {
	_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	c := status(err)
	return c != http.StatusForbidden && c != http.StatusUnauthorized
}

func (b *Backend) read(ctx context.Context, s *session, ref Ref) (*vault.KVSecret, error) {
	kv := s.client.KVv2(b.cfg.Mount)
	if ref.Version > 0 {
		return kv.GetVersion(ctx, ref.Path, ref.Version)
	}
	return kv.Get(ctx, ref.Path)
}

// credential turns a KV v2 secret version into a credential.
func (b *Backend) credential(ref Ref, secret *vault.KVSecret) (vaultplugins.Credential, error) {
	version := 0
	if secret.VersionMetadata != nil {
		version = secret.VersionMetadata.Version
	}
	if secret.Data == nil || (secret.VersionMetadata != nil && secret.VersionMetadata.Destroyed) {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w: %s version %d", vaultplugins.ErrNotFound, ErrVersionDeleted, ref.Path, version)
	}
	meta := func(key string) string {
		v, _ := secret.CustomMetadata[key].(string)
		return v
	}
	cred := vaultplugins.Credential{Header: b.cfg.Header, Format: b.cfg.Format, Version: strconv.Itoa(version)}
	if h := meta(MetaHeader); h != "" {
		cred.Header = h
	}
	if f := meta(MetaFormat); f != "" {
		cred.Format = f
	}
	if e := meta(MetaExpiresAt); e != "" {
		t, err := time.Parse(time.RFC3339, e)
		if err != nil {
			return vaultplugins.Credential{}, fmt.Errorf("%w: %w: %s: %s is not RFC 3339", vaultplugins.ErrBackend, ErrInvalidMetadata, ref.Path, MetaExpiresAt)
		}
		if !b.cfg.Now().Before(t) {
			return vaultplugins.Credential{}, fmt.Errorf("%w: %w: %s expired at %s", vaultplugins.ErrRevoked, ErrExpired, ref.Path, t.Format(time.RFC3339))
		}
		cred.ExpiresAt = t
	}
	field := ref.Field
	if field == "" {
		field = b.cfg.Field
	}
	value, err := stringField(secret.Data, ref.Path, field)
	if err != nil {
		return vaultplugins.Credential{}, err
	}
	cred.Value = value
	names, err := placeholders(cred.Format)
	if err != nil {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %s: format: %v", vaultplugins.ErrInvalidCredential, ref.Path, err)
	}
	for _, name := range names {
		if name == "value" {
			continue
		}
		v, err := stringField(secret.Data, ref.Path, name)
		if err != nil {
			return vaultplugins.Credential{}, err
		}
		if cred.Values == nil {
			cred.Values = make(map[string]vaultplugins.Secret)
		}
		cred.Values[name] = v
	}
	return cred, nil
}

func stringField(data map[string]any, path, field string) (vaultplugins.Secret, error) {
	v, ok := data[field].(string)
	if !ok || v == "" {
		return "", fmt.Errorf("%w: %w: %s has no string field %q", vaultplugins.ErrNotFound, ErrMissingField, path, field)
	}
	return vaultplugins.Secret(v), nil
}

func (b *Backend) approle() bool { return b.cfg.RoleID != "" }

// session returns the current session, logging in or renewing first when
// one is due.
func (b *Backend) session(ctx context.Context) (*session, error) {
	b.mu.Lock()
	s := b.sess
	b.mu.Unlock()
	if s != nil && (s.renewAt.IsZero() || b.cfg.Now().Before(s.renewAt)) {
		return s, nil
	}
	return b.renew(ctx, s, false)
}

// renew replaces stale: by renewing its token when it is renewable and
// login is false, else by logging in. When another caller has already
// replaced stale, its session is used instead.
func (b *Backend) renew(ctx context.Context, stale *session, login bool) (*session, error) {
	select {
	case b.refresh <- struct{}{}:
		defer func() { <-b.refresh }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: hashicorp vault: waiting for login: %w", vaultplugins.ErrUnavailable, ctx.Err())
	}
	b.mu.Lock()
	cur := b.sess
	b.mu.Unlock()
	if cur != stale {
		return cur, nil
	}
	var gen uint64
	if stale != nil {
		gen = stale.gen
	}
	if !login && stale != nil && stale.renewable {
		s, err := b.renewSelf(ctx, stale)
		if err == nil {
			return b.install(s), nil
		}
		b.log.WarnContext(ctx, "vault token renewal failed; logging in again", "error", err)
	}
	s, err := b.login(ctx, gen+1)
	if err != nil {
		if !login && stale != nil && !stale.expiresAt.IsZero() && b.cfg.Now().Before(stale.expiresAt) {
			b.log.WarnContext(ctx, "vault login failed; the current token is still valid", "error", err)
			return stale, nil
		}
		return nil, err
	}
	return b.install(s), nil
}

func (b *Backend) install(s *session) *session {
	b.mu.Lock()
	b.sess = s
	b.mu.Unlock()
	return s
}

func (b *Backend) login(ctx context.Context, gen uint64) (*session, error) {
	path := "auth/" + b.cfg.AppRoleMount + "/login"
	secret, err := b.base.Logical().WriteWithContext(ctx, path, map[string]any{
		"role_id":   b.cfg.RoleID,
		"secret_id": b.cfg.SecretID.Reveal(),
	})
	if err != nil {
		if c := status(err); c >= 400 && c < 500 && c != http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: %w: %s: HTTP %d", vaultplugins.ErrDenied, ErrLogin, path, c)
		}
		return nil, b.mapError(ctx, err, "login "+path)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%w: hashicorp vault: %s: no token in the response", vaultplugins.ErrBackend, path)
	}
	b.log.DebugContext(ctx, "vault approle login", "approle_mount", b.cfg.AppRoleMount, "lease_seconds", secret.Auth.LeaseDuration, "renewable", secret.Auth.Renewable)
	return b.newSession(vaultplugins.Secret(secret.Auth.ClientToken), secret.Auth.LeaseDuration, gen, secret.Auth.Renewable)
}

func (b *Backend) renewSelf(ctx context.Context, s *session) (*session, error) {
	secret, err := s.client.Auth().Token().RenewSelfWithContext(ctx, 0)
	if err != nil {
		return nil, b.mapError(ctx, err, "renew token")
	}
	if secret == nil || secret.Auth == nil {
		return nil, fmt.Errorf("%w: hashicorp vault: renew token: no auth in the response", vaultplugins.ErrBackend)
	}
	b.log.DebugContext(ctx, "vault token renewed", "lease_seconds", secret.Auth.LeaseDuration)
	token := secret.Auth.ClientToken
	if token == "" {
		token = s.client.Token()
	}
	return b.newSession(vaultplugins.Secret(token), secret.Auth.LeaseDuration, s.gen+1, secret.Auth.Renewable)
}

func (b *Backend) newSession(token vaultplugins.Secret, leaseSeconds int, gen uint64, renewable bool) (*session, error) {
	c, err := b.base.Clone()
	if err != nil {
		return nil, fmt.Errorf("%w: hashicorp vault: client: %v", vaultplugins.ErrBackend, err)
	}
	c.SetToken(token.Reveal())
	s := &session{client: c, gen: gen, renewable: renewable}
	if leaseSeconds > 0 {
		now := b.cfg.Now()
		lease := time.Duration(leaseSeconds) * time.Second
		s.renewAt = now.Add(lease * 2 / 3)
		s.expiresAt = now.Add(lease)
	}
	return s, nil
}

// status returns the HTTP status of a Vault response error, or 0.
func status(err error) int {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// mapError turns a Vault client error into a vaultplugins sentinel. The
// client's own error text is dropped: it can carry raw response bodies.
func (b *Backend) mapError(ctx context.Context, err error, op string) error {
	if errors.Is(err, vault.ErrSecretNotFound) {
		return fmt.Errorf("%w: hashicorp vault: %s: no such secret", vaultplugins.ErrNotFound, op)
	}
	if c := status(err); c != 0 {
		switch {
		case c == http.StatusNotFound:
			return fmt.Errorf("%w: hashicorp vault: %s: HTTP 404", vaultplugins.ErrNotFound, op)
		case c == http.StatusForbidden || c == http.StatusUnauthorized:
			return fmt.Errorf("%w: hashicorp vault: %s: HTTP %d", vaultplugins.ErrDenied, op, c)
		case c == http.StatusTooManyRequests || c == http.StatusPreconditionFailed || c >= 500:
			return fmt.Errorf("%w: hashicorp vault: %s: HTTP %d", vaultplugins.ErrUnavailable, op, c)
		case c == http.StatusBadRequest:
			return fmt.Errorf("%w: hashicorp vault: %s: HTTP 400", vaultplugins.ErrInvalidRequest, op)
		default:
			return fmt.Errorf("%w: hashicorp vault: %s: HTTP %d", vaultplugins.ErrBackend, op, c)
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: hashicorp vault: %s: %w", vaultplugins.ErrUnavailable, op, ctxErr)
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		reason := "network error"
		var oe *net.OpError
		if errors.As(err, &oe) {
			reason = oe.Op + ": " + oe.Err.Error()
		} else if ne != nil && ne.Timeout() {
			reason = "timeout"
		}
		return fmt.Errorf("%w: hashicorp vault: %s: %s", vaultplugins.ErrUnavailable, op, reason)
	}
	return fmt.Errorf("%w: hashicorp vault: %s: unexpected response", vaultplugins.ErrBackend, op)
}

var _ vaultplugins.Backend = (*Backend)(nil)
