package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// SoftwareStatementConfig lists who may sign software statements (RFC 7591
// section 2.3) and which software they may vouch for.
type SoftwareStatementConfig struct {
	// Issuers are the trusted signers of software statements; a statement
	// from any other iss is invalid_software_statement.
	Issuers []StatementIssuer `yaml:"issuers"`
	// ApprovedSoftwareIDs, when non-empty, are the only software_id values
	// a statement may carry; a statement from a trusted issuer naming any
	// other (or none) is unapproved_software_statement. Empty: any
	// software_id from a trusted issuer. A statement without software_id
	// is always refused (invalid_software_statement when this is empty).
	ApprovedSoftwareIDs []string `yaml:"approved_software_ids"`
}

// StatementIssuer is one trusted signer of software statements. Exactly
// one of JWKSFile, JWKSURI and JWKS is set.
type StatementIssuer struct {
	// Issuer is the exact iss of the issuer's statements.
	Issuer string `yaml:"issuer"`
	// JWKSFile is a JWK Set file of the issuer's public keys, read once
	// by NewRegistrar.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURI is the issuer's JWK Set URL: https, or http on a loopback
	// host. It is fetched when the first statement arrives and refetched
	// (at most once a minute) when a statement names an unknown kid.
	JWKSURI string `yaml:"jwks_uri"`
	// JWKS is an inline JWK Set.
	JWKS []byte `yaml:"-"`
}

// statementAlgorithms are the signing algorithms a software statement may
// use: asymmetric only, never none or HMAC.
var statementAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

const (
	// maxStatement caps a software statement's length in bytes.
	maxStatement = 16 << 10
	// maxStatementJWKS caps a statement issuer's JWK Set document.
	maxStatementJWKS = 1 << 20
	// statementRefetch is the least time between two fetches of an
	// issuer's jwks_uri.
	statementRefetch = time.Minute
	// statementLeeway is the clock skew allowed on exp, nbf and iat.
	statementLeeway = 30 * time.Second
)

// statementVerifier verifies software statements.
type statementVerifier struct {
	issuers  map[string]*statementKeys
	approved map[string]bool
	now      func() time.Time
}

// statementKeys is one issuer's verification keys.
type statementKeys struct {
	keys   *jwkset.MemoryJWKSet
	lookup keyfunc.Keyfunc

	// Remote key sets only.
	uri    string
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	fetched   bool
	lastFetch time.Time
}

// softwareStatement is what a verified statement contributes to a
// registration.
type softwareStatement struct {
	// fields are the client metadata claims, JSON-encoded by name.
	fields     map[string]json.RawMessage
	softwareID string
	tenant     string
	owner      string
}

func newStatementVerifier(cfg SoftwareStatementConfig, client *http.Client, now func() time.Time) (*statementVerifier, error) {
	v := &statementVerifier{issuers: map[string]*statementKeys{}, approved: map[string]bool{}, now: now}
	for i, is := range cfg.Issuers {
		field := fmt.Sprintf("software_statements.issuers[%d]", i)
		if is.Issuer == "" {
			return nil, fmt.Errorf("%w: %s.issuer is empty", ErrConfig, field)
		}
		if _, dup := v.issuers[is.Issuer]; dup {
			return nil, fmt.Errorf("%w: %s: issuer %q listed twice", ErrConfig, field, is.Issuer)
		}
		sources := 0
		for _, set := range []bool{is.JWKSFile != "", is.JWKSURI != "", len(is.JWKS) > 0} {
			if set {
				sources++
			}
		}
		if sources != 1 {
			return nil, fmt.Errorf("%w: %s needs exactly one of jwks_file and jwks_uri", ErrConfig, field)
		}
		k := &statementKeys{keys: jwkset.NewMemoryStorage(), uri: is.JWKSURI, client: client, now: now}
		lookup, err := keyfunc.New(keyfunc.Options{Storage: k.keys})
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, field, err)
		}
		k.lookup = lookup
		switch {
		case is.JWKSURI != "":
			u, err := url.Parse(is.JWKSURI)
			if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
				return nil, fmt.Errorf("%w: %s.jwks_uri must be an https URL (http only on a loopback host)", ErrConfig, field)
			}
		default:
			raw := is.JWKS
			if is.JWKSFile != "" {
				f, err := os.Open(is.JWKSFile)
				if err != nil {
					return nil, fmt.Errorf("%w: %s.jwks_file: %w", ErrConfig, field, err)
				}
				raw, err = io.ReadAll(io.LimitReader(f, maxStatementJWKS+1))
				f.Close()
				if err != nil {
					return nil, fmt.Errorf("%w: %s.jwks_file: %w", ErrConfig, field, err)
				}
			}
			if err := loadStatementJWKS(k.keys, raw); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrConfig, field, err)
			}
			k.fetched = true
		}
		v.issuers[is.Issuer] = k
	}
	for _, id := range cfg.ApprovedSoftwareIDs {
		v.approved[id] = true
	}
	return v, nil
}

// loadStatementJWKS replaces keys with the public signing keys of raw.
// Symmetric keys are refused: they would let HMAC stand in for a signature.
func loadStatementJWKS(keys *jwkset.MemoryJWKSet, raw []byte) error {
	if len(raw) > maxStatementJWKS {
		return errors.New("JWK Set too large")
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("not a JWK Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("JWK Set holds no keys")
	}
	for i, k := range set.Keys {
		if k.KTY == jwkset.KtyOct {
			return fmt.Errorf("keys[%d] is a symmetric (oct) key", i)
		}
	}
	list, err := set.JWKSlice()
	if err != nil {
		return err
	}
	return keys.KeyReplaceAll(context.Background(), list)
}

// keyfunc returns the key that verifies a statement, fetching the
// issuer's jwks_uri on first use and on an unknown kid (rate limited).
func (k *statementKeys) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if k.uri != "" && k.mayFetch(false) {
			k.fetch(ctx)
		}
		key, err := k.lookup.KeyfuncCtx(ctx)(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) && k.uri != "" && k.mayFetch(true) {
			k.fetch(ctx)
			key, err = k.lookup.KeyfuncCtx(ctx)(t)
		}
		return key, err
	}
}

// mayFetch claims the right to fetch: always before the first successful
// fetch (at most once per statementRefetch), and on an unknown kid at most
// once per statementRefetch.
func (k *statementKeys) mayFetch(unknownKID bool) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fetched && !unknownKID {
		return false
	}
	now := k.now()
	if !k.lastFetch.IsZero() && now.Sub(k.lastFetch) < statementRefetch {
		return false
	}
	k.lastFetch = now
	return true
}

// fetch replaces the key set with the issuer's current one; on failure
// the previous keys stay.
func (k *statementKeys) fetch(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri, nil)
	if err != nil {
		return
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxStatementJWKS+1))
	if err != nil {
		return
	}
	if loadStatementJWKS(k.keys, raw) == nil {
		k.mu.Lock()
		k.fetched = true
		k.mu.Unlock()
	}
}

// verify checks a software statement: a JWT signed with an allowed
// algorithm by a trusted issuer, unexpired, naming a software_id (an
// approved one when ApprovedSoftwareIDs is set). exp, nbf and iat are
// checked when present; RFC 7591 section 2.3 requires none of them, nor
// software_id, but a statement that names no software vouches for nothing
// an operator could approve or trace.
func (v *statementVerifier) verify(ctx context.Context, raw string) (*softwareStatement, *oauthError) {
	if len(raw) > maxStatement {
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement too large")
	}
	var unverified jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil {
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement is not a JWT")
	}
	iss, _ := unverified["iss"].(string)
	keys, ok := v.issuers[iss]
	if !ok {
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement issuer is not trusted")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, keys.keyfunc(ctx),
		jwt.WithValidMethods(statementAlgorithms),
		jwt.WithIssuer(iss),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(statementLeeway),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement expired")
	case err != nil:
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement signature or claims rejected")
	}
	st := &softwareStatement{fields: map[string]json.RawMessage{}}
	for name := range metadataFields {
		if c, ok := claims[name]; ok && c != nil {
			b, err := json.Marshal(c)
			if err != nil {
				return nil, badRequest(codeInvalidSoftwareStatement, "software statement claim "+name+" cannot be read")
			}
			st.fields[name] = b
		}
	}
	var e *oauthError
	if st.softwareID, e = statementString(claims, "software_id"); e != nil {
		return nil, e
	}
	if st.tenant, e = statementString(claims, "tenant"); e != nil {
		return nil, e
	}
	if st.owner, e = statementString(claims, "owner"); e != nil {
		return nil, e
	}
	if st.owner == "" {
		if st.owner, e = statementString(claims, "sub"); e != nil {
			return nil, e
		}
	}
	if len(v.approved) > 0 && !v.approved[st.softwareID] {
		return nil, badRequest(codeUnapprovedSoftwareStatement, "software_id is not approved")
	}
	if st.softwareID == "" {
		return nil, badRequest(codeInvalidSoftwareStatement, "software statement must carry a software_id")
	}
	return st, nil
}

// statementString reads an optional string claim of printable text.
func statementString(claims jwt.MapClaims, name string) (string, *oauthError) {
	c, ok := claims[name]
	if !ok || c == nil {
		return "", nil
	}
	s, ok := c.(string)
	if !ok || len(s) > 256 || !printableText(s) {
		return "", badRequest(codeInvalidSoftwareStatement, "software statement claim "+name+" must be printable text")
	}
	return s, nil
}
