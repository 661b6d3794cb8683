package agents

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"github.com/writ-dev/writ/tokens"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
)

// Grant types writ's token endpoint serves, the only ones a client may
// register.
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantCIBA              = "urn:openid:params:grant-type:ciba"
)

// Token endpoint authentication methods a client may register.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Application types (OpenID Connect Dynamic Client Registration 1.0).
const (
	ApplicationWeb    = "web"
	ApplicationNative = "native"
)

// Error codes of RFC 7591 section 3.2.2 a MetadataError carries.
const (
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
	CodeInvalidClientMetadata = "invalid_client_metadata"
)

// Limits on client metadata values.
const (
	MaxURILength    = 2048 // bytes, any URI field
	MaxRedirectURIs = 20
	MaxTextLength   = 256 // bytes: client_name, software_id, software_version, each contact
	MaxScopeLength  = 1024
	MaxContacts     = 10
	MaxJWKSKeys     = 20
	// MinRSABits and MaxRSABits bound an RSA key's modulus.
	MinRSABits = 2048
	MaxRSABits = 8192
)

// MetadataError is client metadata writ refuses: Code is the RFC 7591
// error code (CodeInvalidRedirectURI or CodeInvalidClientMetadata) and
// Description says which field and why, for the client. It matches
// ErrInvalid with errors.Is.
type MetadataError struct {
	Code        string
	Description string
}

func (e *MetadataError) Error() string { return "agents: " + e.Code + ": " + e.Description }

// Unwrap makes a MetadataError an ErrInvalid.
func (e *MetadataError) Unwrap() error { return ErrInvalid }

func metadataErr(format string, args ...any) *MetadataError {
	return &MetadataError{Code: CodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func redirectErr(format string, args ...any) *MetadataError {
	return &MetadataError{Code: CodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// WithDefaults returns m with the defaults writ registers filled in:
//
//   - grant_types ["client_credentials"] when omitted. RFC 7591 section 2
//     names authorization_code as the default, but writ serves no
//     authorization_code grant, and section 3.2.1 lets the server replace
//     requested values with what it actually registers (and return them);
//   - token_endpoint_auth_method client_secret_basic (RFC 7591's default);
//   - application_type web (OpenID Connect's default);
//   - a jwks of JSON null is dropped, as an omitted one.
//
// response_types stays omitted: writ serves no response type.
func (m ClientMetadata) WithDefaults() ClientMetadata {
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{GrantClientCredentials}
	}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = AuthClientSecretBasic
	}
	if m.ApplicationType == "" {
		m.ApplicationType = ApplicationWeb
	}
	if bytes.Equal(bytes.TrimSpace(m.JWKS), []byte("null")) {
		m.JWKS = nil
	}
	return m
}

// Validate checks m against RFC 7591 section 2 and what writ serves; omitted
// fields are judged by their WithDefaults values. The error is a
// *MetadataError naming the first field at fault.
func (m ClientMetadata) Validate() error {
	m = m.WithDefaults()
	if err := m.validateTypes(); err != nil {
		return err
	}
	if err := m.validateGrants(); err != nil {
		return err
	}
	if err := m.validateKeys(); err != nil {
		return err
	}
	if err := m.validateRedirectURIs(); err != nil {
		return err
	}
	return m.validateText()
}

func (m ClientMetadata) validateTypes() error {
	switch m.ApplicationType {
	case ApplicationWeb, ApplicationNative:
		return nil
	}
	return metadataErr("application_type %s is not supported (want web or native)", quote(m.ApplicationType))
}

func (m ClientMetadata) validateGrants() error {
	for i, g := range m.GrantTypes {
		switch g {
		case GrantClientCredentials, GrantTokenExchange, GrantCIBA:
		case "authorization_code", "implicit", "refresh_token", "password":
			return metadataErr("grant_type %s is not served by writ (it serves client_credentials, token exchange and CIBA)", quote(g))
		default:
			return metadataErr("grant_type %s is not supported", quote(g))
		}
		if slices.Contains(m.GrantTypes[:i], g) {
			return metadataErr("grant_type %s is repeated", quote(g))
		}
	}
	// RFC 7591 section 2.1: code needs authorization_code and token needs
	// implicit, and writ serves neither.
	for _, rt := range m.ResponseTypes {
		switch rt {
		case "code":
			return metadataErr("response_type \"code\" needs the authorization_code grant, which writ does not serve")
		case "token":
			return metadataErr("response_type \"token\" needs the implicit grant, which writ does not serve")
		default:
			return metadataErr("response_type %s is not supported (writ serves no response type)", quote(rt))
		}
	}
	switch m.TokenEndpointAuthMethod {
	case AuthClientSecretBasic, AuthPrivateKeyJWT:
	case "none":
		return metadataErr("token_endpoint_auth_method \"none\" is refused: every grant writ serves needs client authentication")
	default:
		return metadataErr("token_endpoint_auth_method %s is not supported (want client_secret_basic or private_key_jwt)", quote(m.TokenEndpointAuthMethod))
	}
	return nil
}

func (m ClientMetadata) validateKeys() error {
	if len(m.JWKS) > 0 && m.JWKSURI != "" {
		return metadataErr("jwks and jwks_uri must not both be present")
	}
	if m.TokenEndpointAuthMethod == AuthPrivateKeyJWT && len(m.JWKS) == 0 && m.JWKSURI == "" {
		return metadataErr("private_key_jwt needs jwks or jwks_uri")
	}
	if m.JWKSURI != "" {
		if err := checkHTTPS("jwks_uri", m.JWKSURI, false); err != nil {
			return err
		}
	}
	if len(m.JWKS) > 0 {
		_, err := PublicJWKS(m.JWKS)
		return err
	}
	return nil
}

// privateMembers are JWK members that carry private or symmetric key
// material (RFC 7518 section 6), refused in any letter case.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// PublicJWKS checks that raw is a JWK Set of public RSA, EC or OKP keys
// only, and returns it re-encoded from the parsed keys: members with
// standard meanings only, exactly as RFC 7517 spells them. Any private or
// symmetric key material refuses the whole set. The error is a
// *MetadataError.
func PublicJWKS(raw json.RawMessage) (json.RawMessage, error) {
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil || set == nil {
		return nil, metadataErr("jwks must be a JWK Set object")
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(set["keys"], &keys); err != nil || len(keys) == 0 {
		return nil, metadataErr("jwks must hold a non-empty \"keys\" array of JWK objects")
	}
	if len(keys) > MaxJWKSKeys {
		return nil, metadataErr("jwks holds more than %d keys", MaxJWKSKeys)
	}
	out := make([]jwkset.JWKMarshal, 0, len(keys))
	for i, k := range keys {
		if k == nil {
			return nil, metadataErr("jwks keys[%d] is not a JWK object", i)
		}
		for name := range k {
			if slices.Contains(privateMembers, strings.ToLower(name)) {
				return nil, metadataErr("jwks keys[%d] holds private or symmetric key material (%s); register public keys only", i, quote(name))
			}
		}
		var kty string
		if err := json.Unmarshal(k["kty"], &kty); err != nil || (kty != "RSA" && kty != "EC" && kty != "OKP") {
			return nil, metadataErr("jwks keys[%d] kty must be RSA, EC or OKP", i)
		}
		var jm jwkset.JWKMarshal
		b, _ := json.Marshal(k)
		if err := json.Unmarshal(b, &jm); err != nil {
			return nil, metadataErr("jwks keys[%d] is not a valid JWK", i)
		}
		jwk, err := jwkset.NewJWKFromMarshal(jm, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, metadataErr("jwks keys[%d] is not a valid public JWK", i)
		}
		if pub, ok := jwk.Key().(*rsa.PublicKey); ok && (pub.N.BitLen() < MinRSABits || pub.N.BitLen() > MaxRSABits) {
			return nil, metadataErr("jwks keys[%d] RSA modulus must be %d to %d bits", i, MinRSABits, MaxRSABits)
		}
		out = append(out, jwk.Marshal())
	}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: out})
	if err != nil {
		return nil, metadataErr("jwks cannot be encoded")
	}
	return b, nil
}

func (m ClientMetadata) validateRedirectURIs() error {
	if len(m.RedirectURIs) > MaxRedirectURIs {
		return redirectErr("more than %d redirect_uris", MaxRedirectURIs)
	}
	for i, raw := range m.RedirectURIs {
		if err := checkRedirectURI(raw, m.ApplicationType); err != nil {
			err.Description = "redirect_uris[" + strconv.Itoa(i) + "]: " + err.Description
			return err
		}
	}
	return nil
}

// neverSchemes can never be a redirect URI's scheme.
var neverSchemes = []string{"javascript", "data", "file", "vbscript", "blob", "about", "filesystem", "view-source"}

// checkRedirectURI accepts an absolute URI without fragment that is https,
// http on a loopback host, or (for native applications) a private-use
// scheme in reverse domain name form (RFC 8252 sections 7.1 and 7.3).
func checkRedirectURI(raw, appType string) *MetadataError {
	if raw == "" || len(raw) > MaxURILength || !isURIText(raw) {
		return redirectErr("must be a URI of printable ASCII, at most %d bytes", MaxURILength)
	}
	if strings.Contains(raw, "#") {
		return redirectErr("must not contain a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return redirectErr("must be an absolute URI")
	}
	scheme := strings.ToLower(u.Scheme)
	if slices.Contains(neverSchemes, scheme) {
		return redirectErr("scheme %q is never allowed", scheme)
	}
	if u.User != nil {
		return redirectErr("must not carry user information")
	}
	switch scheme {
	case "https":
		if u.Host == "" {
			return redirectErr("https URI without a host")
		}
		return nil
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return redirectErr("http is allowed only on a loopback host (127.0.0.1, [::1], localhost)")
		}
		return nil
	}
	if appType != ApplicationNative {
		return redirectErr("scheme %q is allowed only for native applications", scheme)
	}
	if !strings.Contains(scheme, ".") {
		return redirectErr("private-use scheme %q must be in reverse domain name form", scheme)
	}
	return nil
}

func isLoopbackHost(h string) bool { return h == "127.0.0.1" || h == "::1" || h == "localhost" }

// checkHTTPS accepts an absolute https URL with a host and no user
// information; allowFragment says whether it may carry a fragment.
func checkHTTPS(field, raw string, allowFragment bool) *MetadataError {
	if len(raw) > MaxURILength || !isURIText(raw) {
		return metadataErr("%s must be a URL of printable ASCII, at most %d bytes", field, MaxURILength)
	}
	if !allowFragment && strings.Contains(raw, "#") {
		return metadataErr("%s must not contain a fragment", field)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return metadataErr("%s must be an absolute https URL", field)
	}
	return nil
}

func (m ClientMetadata) validateText() error {
	for _, f := range []struct{ name, value string }{
		{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}, {"tos_uri", m.TOSURI}, {"policy_uri", m.PolicyURI},
	} {
		if f.value == "" {
			continue
		}
		if err := checkHTTPS(f.name, f.value, true); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, value string }{
		{"client_name", m.ClientName}, {"software_id", m.SoftwareID}, {"software_version", m.SoftwareVersion},
	} {
		if !isPrintable(f.value) || len(f.value) > MaxTextLength {
			return metadataErr("%s must be printable text of at most %d bytes", f.name, MaxTextLength)
		}
	}
	if m.Scope != "" {
		if len(m.Scope) > MaxScopeLength {
			return metadataErr("scope is longer than %d bytes", MaxScopeLength)
		}
		for tok := range strings.SplitSeq(m.Scope, " ") {
			if !tokens.IsScopeToken(tok) {
				return metadataErr("scope must be scope-tokens separated by single spaces (RFC 6749 section 3.3)")
			}
		}
	}
	if len(m.Contacts) > MaxContacts {
		return metadataErr("more than %d contacts", MaxContacts)
	}
	for i, c := range m.Contacts {
		if c == "" || !isPrintable(c) || len(c) > MaxTextLength {
			return metadataErr("contacts[%d] must be non-empty printable text of at most %d bytes", i, MaxTextLength)
		}
	}
	return nil
}

// isPrintable is valid UTF-8 of printable characters and plain spaces
// only: no control, format (bidirectional overrides) or separator
// characters.
func isPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// isURIText is printable ASCII without spaces.
func isURIText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// quote quotes a client-supplied value for an error description, cut to a
// readable length.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
