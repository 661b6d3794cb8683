package vaultplugins

import (
	"context"
	"fmt"
	"net/textproto"
	"strings"
	"time"
)

// Backend fetches credentials at call time. Implementations must be safe for
// concurrent use and must honour ctx cancellation.
type Backend interface {
	// Fetch returns the credential req names. Errors wrap the sentinels in
	// errors.go (ErrNotFound, ErrDenied, ErrRevoked, ...).
	Fetch(ctx context.Context, req Request) (Credential, error)
	// Describe reports what the backend is.
	Describe(ctx context.Context) (Description, error)
}

// Closer is an optional capability: a Backend that also implements Closer is
// closed when it is shut down (by Serve when the host stops the plugin, or by
// Host.Close for an in-process backend).
type Closer interface {
	Close(ctx context.Context) error
}

// Request names the credential a decision wants and the call it is for. A
// backend may use the context fields (user, agent, tenant, resource, scopes)
// to pick or narrow the credential.
type Request struct {
	// Backend is the configured backend name; the host routes on it.
	Backend string
	// Ref is the backend-specific reference, such as "salesforce/prod" or a
	// KV path.
	Ref      string
	User     string
	Agent    string
	Tenant   string
	Resource string
	// Scopes are the scopes the decision grants for this call.
	Scopes []string
}

// Credential is what the upstream request receives.
type Credential struct {
	// Value is the credential value; Values holds named parts for
	// credentials made of several (for example "username" and "password").
	Value  Secret
	Values map[string]Secret
	// Header is the upstream request header to set; empty means
	// Authorization.
	Header string
	// Format renders the header value: {value} stands for Value and {NAME}
	// for Values[NAME]; every other character is literal. Empty means
	// "{value}". Example: "Bearer {value}".
	Format string
	// ExpiresAt is when the value stops being valid; zero means unknown.
	// Caches must drop the credential before then.
	ExpiresAt time.Time
	// Version identifies the value's version for evidence records.
	Version string
}

// Description is what a backend reports about itself.
type Description struct {
	// Name is the backend's kind, such as "local" or "hashicorp-vault".
	Name string
	// Version is the backend implementation's version.
	Version string
	// Summary is one line of human-readable description.
	Summary string
}

// DefaultHeader is the header a credential is set on when Header is empty.
const DefaultHeader = "Authorization"

// Render returns the header name and the rendered header value.
func (c Credential) Render() (header string, value Secret, err error) {
	header = c.Header
	if header == "" {
		header = DefaultHeader
	}
	if !validHeaderName(header) {
		return "", "", fmt.Errorf("%w: header name %q", ErrInvalidCredential, header)
	}
	format := c.Format
	if format == "" {
		format = "{value}"
	}
	var b strings.Builder
	for rest := format; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", "", fmt.Errorf("%w: unterminated placeholder in format", ErrInvalidCredential)
		}
		name := rest[open+1 : open+end]
		switch v, ok := c.Values[name]; {
		case name == "value":
			b.WriteString(c.Value.Reveal())
		case ok:
			b.WriteString(v.Reveal())
		default:
			return "", "", fmt.Errorf("%w: format names unknown value %q", ErrInvalidCredential, name)
		}
		rest = rest[open+end+1:]
	}
	out := b.String()
	if out == "" || strings.ContainsAny(out, "\r\n\x00") {
		return "", "", fmt.Errorf("%w: rendered value is empty or has control characters", ErrInvalidCredential)
	}
	return header, Secret(out), nil
}

func validHeaderName(h string) bool {
	if h == "" || h != strings.TrimSpace(h) {
		return false
	}
	for _, r := range h {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(h) != ""
}

// size is the number of credential bytes a response carries.
func (c Credential) size() int {
	n := len(c.Value) + len(c.Header) + len(c.Format) + len(c.Version)
	for k, v := range c.Values {
		n += len(k) + len(v)
	}
	return n
}
