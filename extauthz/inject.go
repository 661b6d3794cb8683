package extauthz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/vaultplugins"
)

// Credentials fetches vaulted credentials for upstreams (a
// vaultplugins.Host). Values never pass through policy: the decision names
// a backend and a reference, and writ fetches after deciding.
type Credentials interface {
	Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error)
}

// injection is a credential ready to set on the upstream request.
type injection struct {
	header string
	value  vaultplugins.Secret
}

// cachedCredential is what the credential cache holds: the rendered header
// and value, and the version for evidence.
type cachedCredential struct {
	header  string
	value   vaultplugins.Secret
	version string
}

// credentialCache keeps fetched credentials for less than their lifetime;
// a burst of Checks for one credential makes one backend call.
type credentialCache struct {
	cache  *ristretto.Cache[string, *cachedCredential]
	flight singleflight.Group
	ttl    time.Duration
	margin time.Duration
}

func newCredentialCache(ttl time.Duration) (*credentialCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, *cachedCredential]{
		NumCounters: 100_000, MaxCost: 10_000, BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &credentialCache{cache: c, ttl: ttl, margin: 30 * time.Second}, nil
}

// inject fetches the credential the decision names, through the cache.
// With no credential named it hands on with nothing to set. A reference
// that cannot be built, a credential the backend does not hold or has had
// revoked is a 403; any other backend failure or timeout a 503 — never an
// allow without the credential the decision asked for.
func (s *Server) inject(ctx context.Context, identity *policies.Identity, dec policies.Decision, d *description, rec *audit.Record) (injection, verdict, bool) {
	ref := dec.Credential
	if ref == nil {
		return injection{}, verdict{}, true
	}
	rec.Credential = &audit.Credential{Backend: ref.Backend, Ref: ref.Ref}
	if s.deps.Credentials == nil {
		rec.Credential.Error = "no credential backends are configured"
		return injection{}, fault(503, causeCredential, fmt.Sprintf("credential backend %q is not configured", ref.Backend)), false
	}
	expanded, err := expandRef(ref.Ref, identity)
	if err != nil {
		rec.Credential.Error = err.Error()
		return injection{}, credentialDenial(fmt.Sprintf("credential reference for backend %q cannot be built: %v", ref.Backend, err)), false
	}
	rec.Credential.Ref = expanded
	req := vaultplugins.Request{Backend: ref.Backend, Ref: expanded, Scopes: dec.Scopes}
	if identity != nil {
		req.User, req.Agent, req.Tenant = identity.User, identity.Agent, identity.Tenant
	}
	if r := d.input.Resource; r != nil {
		req.Resource = r.ID
	}
	got, err := s.fetchCredential(ctx, req, ref)
	if err != nil {
		rec.Credential.Error = credentialErrorText(err)
		s.log.Warn("credential not injected", "decision_id", rec.DecisionID, "backend", ref.Backend, "ref", expanded, "error", rec.Credential.Error)
		if errors.Is(err, vaultplugins.ErrNotFound) || errors.Is(err, vaultplugins.ErrRevoked) || errors.Is(err, vaultplugins.ErrDenied) {
			return injection{}, credentialDenial(fmt.Sprintf("credential backend %q: %s", ref.Backend, rec.Credential.Error)), false
		}
		return injection{}, fault(503, causeCredential, fmt.Sprintf("credential backend %q failed: %s", ref.Backend, rec.Credential.Error)), false
	}
	rec.Credential.Version = got.version
	return injection{header: got.header, value: got.value}, verdict{}, true
}

// fetchCredential returns the rendered credential from the cache, or from
// one backend call shared by every concurrent Check that needs it.
func (s *Server) fetchCredential(ctx context.Context, req vaultplugins.Request, ref *policies.CredentialRef) (*cachedCredential, error) {
	scopes := req.Scopes
	if !slices.IsSorted(scopes) {
		scopes = slices.Sorted(slices.Values(scopes))
	}
	// The key holds everything the backend is told: a reference such as
	// an oauth provider name means "this caller's", so two callers never
	// share an entry unless every field of their requests is the same.
	key := strings.Join([]string{req.Backend, req.Ref, req.User, req.Agent, req.Tenant, req.Resource,
		ref.Header, ref.Format, strings.Join(scopes, " ")}, "\x00")
	if c, ok := s.credentials.cache.Get(key); ok {
		return c, nil
	}
	// The shared call outlives any one caller: it is bounded by the host's
	// call timeout, not by the first caller's context.
	v, err, _ := s.credentials.flight.Do(key, func() (any, error) {
		cred, err := s.deps.Credentials.Fetch(context.WithoutCancel(ctx), req)
		if err != nil {
			return nil, err
		}
		if ref.Header != "" {
			cred.Header = ref.Header
		}
		if ref.Format != "" {
			cred.Format = strings.ReplaceAll(ref.Format, "{secret}", "{value}")
		}
		header, value, err := cred.Render()
		if err != nil {
			return nil, err
		}
		now := time.Now()
		ttl := s.credentials.ttl
		if !cred.ExpiresAt.IsZero() {
			left := cred.ExpiresAt.Sub(now)
			if left <= 0 {
				return nil, fmt.Errorf("%w: the credential has expired", vaultplugins.ErrInvalidCredential)
			}
			ttl = min(ttl, left-min(s.credentials.margin, left/2))
		}
		c := &cachedCredential{header: strings.ToLower(header), value: value, version: cred.Version}
		if ttl > 0 {
			s.credentials.cache.SetWithTTL(key, c, 1, ttl)
			s.credentials.cache.Wait()
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cachedCredential), nil
}

// expandRef fills {user}, {agent} and {tenant} in a credential reference
// from the verified identity. A value that could step out of its path
// segment is refused rather than escaped.
func expandRef(ref string, identity *policies.Identity) (string, error) {
	if !strings.ContainsAny(ref, "{}") {
		return ref, nil
	}
	var values [3]string
	if identity != nil {
		values = [3]string{identity.User, identity.Agent, identity.Tenant}
	}
	expanded := ref
	for i, name := range [3]string{"user", "agent", "tenant"} {
		placeholder := "{" + name + "}"
		if !strings.Contains(ref, placeholder) {
			continue
		}
		v := values[i]
		switch {
		case v == "":
			return "", fmt.Errorf("%s is empty for this caller", placeholder)
		case v == "." || v == ".." || strings.ContainsAny(v, "/\\{}#@?") || strings.IndexFunc(v, unicode.IsControl) >= 0:
			return "", fmt.Errorf("%s holds characters a reference segment cannot", placeholder)
		}
		expanded = strings.ReplaceAll(expanded, placeholder, v)
	}
	if strings.ContainsAny(expanded, "{}") {
		return "", errors.New("unknown placeholder (only {user}, {agent} and {tenant})")
	}
	return expanded, nil
}

// credentialErrorText names a backend failure by its kind only: a
// backend's own message could carry anything.
func credentialErrorText(err error) string {
	for _, e := range []struct {
		err  error
		text string
	}{
		{vaultplugins.ErrNotFound, "no such credential"},
		{vaultplugins.ErrRevoked, "the credential's grant was revoked; reconnect the account"},
		{vaultplugins.ErrDenied, "the backend refused access to the credential"},
		{vaultplugins.ErrTimeout, "the backend timed out"},
		{vaultplugins.ErrUnavailable, "the backend is unavailable"},
		{vaultplugins.ErrUnknownBackend, "no such backend is configured"},
		{vaultplugins.ErrResponseTooLarge, "the backend's answer was too large"},
		{vaultplugins.ErrInvalidCredential, "the backend returned an unusable credential"},
		{vaultplugins.ErrInvalidRequest, "the backend refused the request as invalid"},
	} {
		if errors.Is(err, e.err) {
			return e.text
		}
	}
	return "the backend failed"
}

func credentialDenial(reason string) verdict {
	return verdict{outcome: "deny", cause: causeCredential, status: 403, reason: reason, errorCode: "credential_unavailable"}
}
