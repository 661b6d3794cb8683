package oauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/writ-dev/writ/vaultplugins"
)

// RefPrefix starts the long form of a reference, which names the user:
// "users/{user}/{provider}".
const RefPrefix = "users/"

// ParseRef splits a reference into user and provider. A reference is either
// a provider name ("github"), for the request's user, or
// "users/{user}/{provider}" (the user may itself hold slashes). The long
// form's user must equal the request's user when the request names one.
func ParseRef(ref, requestUser string) (user, provider string, err error) {
	if rest, ok := strings.CutPrefix(ref, RefPrefix); ok {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			return "", "", fmt.Errorf("%w: want users/{user}/{provider}", ErrInvalidRef)
		}
		user, provider = rest[:i], rest[i+1:]
		if err := checkUser(user); err != nil {
			return "", "", err
		}
		if requestUser != "" && requestUser != user {
			return "", "", fmt.Errorf("%w: reference names user %q, the request is for user %q", vaultplugins.ErrDenied, user, requestUser)
		}
	} else {
		user, provider = requestUser, ref
		if user == "" {
			return "", "", fmt.Errorf("%w: reference %q names no user and the request has none", ErrInvalidRef, ref)
		}
		if err := checkUser(user); err != nil {
			return "", "", err
		}
	}
	if err := checkName(provider); err != nil {
		return "", "", err
	}
	return user, provider, nil
}

// Fetch implements vaultplugins.Backend. req.Ref names the provider (see
// ParseRef); req.Scopes are the scopes the access token is narrowed to, a
// subset of the account's. No scopes means the account's whole grant.
//
// An access token is served from memory until shortly before it expires;
// otherwise one refresh grant per account runs at a time, and concurrent
// Fetches for the same user, provider and scopes share it. A rotated refresh
// token is stored before the access token is returned. A grant the provider
// refuses (invalid_grant) fails with vaultplugins.ErrRevoked until the
// account is connected again.
func (s *Store) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	user, provider, err := ParseRef(req.Ref, req.User)
	if err != nil {
		if errors.Is(err, vaultplugins.ErrDenied) {
			return vaultplugins.Credential{}, err
		}
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrInvalidRequest, err)
	}
	p, ok := s.providers[provider]
	if !ok {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w: %q", vaultplugins.ErrInvalidRequest, ErrUnknownProvider, provider)
	}
	scopes, err := canonicalScopes(req.Scopes)
	if err != nil {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrInvalidRequest, err)
	}
	key := cacheKey(user, provider, scopes)
	if c, ok := s.cached(key); ok {
		return c, nil
	}
	ch := s.flights.DoChan(key, func() (any, error) {
		// Detached from the caller: a refresh cut short after the provider
		// rotated the refresh token would lose the account.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		return s.refresh(rctx, key, user, p, scopes)
	})
	select {
	case <-ctx.Done():
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrUnavailable, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return vaultplugins.Credential{}, r.Err
		}
		return r.Val.(vaultplugins.Credential), nil
	}
}

// refresh trades the account's refresh token for an access token, one
// account at a time.
func (s *Store) refresh(ctx context.Context, key, user string, p Provider, scopes []string) (vaultplugins.Credential, error) {
	lock := s.accountLock(user, p.Name)
	lock.Lock()
	defer lock.Unlock()
	if c, ok := s.cached(key); ok { // filled while this flight waited
		return c, nil
	}
	a, err := s.load(ctx, user, p.Name)
	if err != nil {
		return vaultplugins.Credential{}, err
	}
	if a.revoked {
		return vaultplugins.Credential{}, revokedError(user, p.Name)
	}
	if len(a.scopes) > 0 {
		for _, sc := range scopes {
			if !slices.Contains(a.scopes, sc) {
				return vaultplugins.Credential{}, fmt.Errorf("%w: scope %q was not granted to the %s account of user %q", vaultplugins.ErrDenied, sc, p.Name, user)
			}
		}
	}

	start := s.now()
	tok, err := s.exchange(ctx, p, a.refresh, scopes)
	if err != nil {
		return vaultplugins.Credential{}, s.refreshError(ctx, err, user, p.Name, a.version)
	}
	version := a.version
	if next := vaultplugins.Secret(tok.RefreshToken); next != "" && next != a.refresh {
		v, stored, err := s.rotate(ctx, user, p.Name, a.version, next)
		if err != nil {
			s.log.ErrorContext(ctx, "oauth refresh token rotated but not stored", "user", user, "provider", p.Name, "error", err)
			return vaultplugins.Credential{}, err
		}
		if !stored {
			// Connected again (or revoked) while refreshing: that account wins.
			return vaultplugins.Credential{}, fmt.Errorf("%w: the %s account of user %q changed during refresh", vaultplugins.ErrUnavailable, p.Name, user)
		}
		version = v
		s.log.InfoContext(ctx, "oauth refresh token rotated", "user", user, "provider", p.Name, "version", version)
	}

	if !strings.EqualFold(tok.Type(), "Bearer") {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %s issued a %q token; only bearer tokens are served", vaultplugins.ErrUnsupported, p.Name, safeText(tok.Type()))
	}
	if granted, ok := grantedScopes(tok); ok && len(scopes) > 0 {
		if wider := difference(granted, scopes); len(wider) > 0 {
			if !p.AcceptWiderScopes {
				return vaultplugins.Credential{}, fmt.Errorf("%w: %s granted scopes %q beyond the requested %q and did not narrow the token", vaultplugins.ErrDenied, p.Name, wider, scopes)
			}
			s.log.WarnContext(ctx, "oauth access token wider than requested", "user", user, "provider", p.Name, "requested", scopes, "extra", wider)
		}
	}

	cred := vaultplugins.Credential{
		Value:   vaultplugins.Secret(tok.AccessToken),
		Header:  p.Header,
		Format:  p.formatOrDefault(),
		Version: strconv.FormatInt(version, 10),
	}
	if lifetime := expiresIn(tok); lifetime > 0 {
		cred.ExpiresAt = start.Add(lifetime)
		s.store(key, cred, cred.ExpiresAt.Add(-min(s.margin, lifetime/2)))
	}
	s.log.InfoContext(ctx, "oauth access token issued", "user", user, "provider", p.Name, "scopes", scopes, "version", version, "expires_at", cred.ExpiresAt)
	return cred, nil
}

// exchange runs the refresh grant (RFC 6749 §6) with the scope parameter.
// clientcredentials is used because it sends scope and lets grant_type be
// set; oauth2.Config's refresh does not send scope.
func (s *Store) exchange(ctx context.Context, p Provider, refresh vaultplugins.Secret, scopes []string) (*oauth2.Token, error) {
	style := oauth2.AuthStyleInHeader
	if p.AuthMethod == AuthPost {
		style = oauth2.AuthStyleInParams
	}
	cc := clientcredentials.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret.Reveal(),
		TokenURL:     p.TokenURL,
		Scopes:       scopes,
		AuthStyle:    style,
		EndpointParams: url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {refresh.Reveal()},
		},
	}
	return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, s.client))
}

// refreshError maps a token endpoint failure to a sentinel, keeping only the
// RFC 6749 error code and HTTP status: descriptions and bodies are the
// provider's text and stay out of writ's errors.
func (s *Store) refreshError(ctx context.Context, err error, user, provider string, version int64) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code := safeText(re.ErrorCode)
		switch {
		case re.ErrorCode == "invalid_grant":
			if merr := s.markRevoked(ctx, user, provider, version); merr != nil {
				s.log.ErrorContext(ctx, "oauth revocation not recorded", "user", user, "provider", provider, "error", merr)
			}
			s.forget(user, provider)
			s.log.WarnContext(ctx, "oauth grant revoked", "user", user, "provider", provider, "version", version)
			return revokedError(user, provider)
		case re.ErrorCode == "invalid_scope":
			return fmt.Errorf("%w: %s refused the requested scopes for user %q (invalid_scope)", vaultplugins.ErrDenied, provider, user)
		case status >= 500 || status == 429 || status == 0 && code == "":
			return fmt.Errorf("%w: %s token endpoint answered HTTP %d %s", vaultplugins.ErrUnavailable, provider, status, code)
		default:
			return fmt.Errorf("%w: %s token endpoint refused the refresh: HTTP %d %s", vaultplugins.ErrBackend, provider, status, code)
		}
	}
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %s token endpoint: %w", vaultplugins.ErrUnavailable, provider, context.DeadlineExceeded)
	case errors.As(err, &ne), errors.As(err, &ue):
		return fmt.Errorf("%w: %s token endpoint unreachable", vaultplugins.ErrUnavailable, provider)
	}
	return fmt.Errorf("%w: %s token endpoint gave an unusable answer", vaultplugins.ErrBackend, provider)
}

func revokedError(user, provider string) error {
	return fmt.Errorf("%w: the %s grant of user %q was revoked or has expired; the user must connect the account again", vaultplugins.ErrRevoked, provider, user)
}

// expiresIn reads the response's expires_in (clientcredentials does not
// copy it to Token.ExpiresIn), so expiry follows the injected clock.
func expiresIn(tok *oauth2.Token) time.Duration {
	var secs int64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = int64(v)
	case string:
		secs, _ = strconv.ParseInt(v, 10, 64)
	}
	if secs <= 0 || secs > 10*365*24*3600 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// grantedScopes reads the response's scope parameter; absent means the
// requested scopes (RFC 6749 §5.1).
func grantedScopes(tok *oauth2.Token) ([]string, bool) {
	switch v := tok.Extra("scope").(type) {
	case string:
		if v != "" {
			return strings.Fields(v), true
		}
	case []any: // some providers answer a JSON array
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}

func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// cached is an access token and the time it stops being served.
type cached struct {
	cred  vaultplugins.Credential
	until time.Time
}

func (s *Store) cached(key string) (vaultplugins.Credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[key]
	if !ok {
		return vaultplugins.Credential{}, false
	}
	if !s.now().Before(c.until) {
		delete(s.cache, key)
		return vaultplugins.Credential{}, false
	}
	return c.cred, true
}

func (s *Store) store(key string, cred vaultplugins.Credential, until time.Time) {
	if !s.now().Before(until) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache[key] = cached{cred: cred, until: until}
}

// forget drops the account's cached access tokens.
func (s *Store) forget(user, provider string) {
	prefix := accountKey(user, provider) + "\x00"
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.cache {
		if strings.HasPrefix(k, prefix) {
			delete(s.cache, k)
		}
	}
}

func cacheKey(user, provider string, scopes []string) string {
	return accountKey(user, provider) + "\x00" + strings.Join(scopes, " ")
}

// canonicalScopes checks each scope is an RFC 6749 §3.3 scope token and
// returns them sorted without duplicates.
func canonicalScopes(scopes []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if sc == "" || len(sc) > 256 || strings.ContainsFunc(sc, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidScope, safeText(sc))
		}
		out = append(out, sc)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func checkUser(user string) error {
	if user == "" || len(user) > maxUserLen || strings.ContainsFunc(user, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: user must be 1 to %d printable bytes", ErrInvalidRef, maxUserLen)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) {
		return fmt.Errorf("%w: provider name must be 1 to %d of A-Z a-z 0-9 . _ -", ErrInvalidRef, maxNameLen)
	}
	return nil
}

// safeText bounds provider-supplied text to a short printable token.
func safeText(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:/", r) {
			return r
		}
		return '?'
	}, s)
}
