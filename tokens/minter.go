package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/golang-jwt/jwt/v5"
)

// Profile is the shape of a minted token.
type Profile string

const (
	// AccessToken is the RFC 9068 JWT access-token profile: header typ
	// "at+jwt", sent upstream as Authorization: Bearer.
	AccessToken Profile = "access_token"
	// TxnToken is the OAuth Transaction Tokens profile: header typ
	// "txntoken+jwt", sent upstream as Txn-Token.
	TxnToken Profile = "txn_token"
)

// Header typ values of minted tokens.
const (
	accessTokenType = "at+jwt"
	txnTokenType    = "txntoken+jwt"
)

// ParseProfile parses a profile name; "" is AccessToken.
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "", AccessToken:
		return AccessToken, nil
	case TxnToken:
		return TxnToken, nil
	}
	return "", fmt.Errorf("%w %q (want %q or %q)", ErrProfile, s, AccessToken, TxnToken)
}

// MintRequest describes the token one decision allows.
type MintRequest struct {
	Profile Profile // "" is AccessToken
	// User is the subject; when empty, the agent is the subject.
	User, Agent, Tenant string
	// Actors is the actor chain, nearest first (Actors[0] is normally
	// Agent), carried as the nested RFC 8693 act claim.
	Actors   []string
	Audience string
	// Scopes become the space-separated scope claim; each must be an RFC
	// 6749 scope-token (printable ASCII, no space, '"' or '\'), or Mint
	// refuses the request with ErrMintRequest.
	Scopes []string
	// TTL is the token's lifetime: 0 means MaxTTL, and it is capped at
	// MaxTTL.
	TTL                    time.Duration
	DecisionID, ApprovalID string
	// Dev marks a caller verified by the development issuer; the token
	// carries dev=true.
	Dev bool
	// NoCache mints a fresh token (new jti) and keeps it out of the mint
	// cache: for tokens handed to a client that may revoke them, where a
	// later identical request must not get a revoked token back.
	NoCache bool
	// AgentEpoch is the agents' suspension count (see agents.Store.Epoch):
	// a cached token is reused only for the same epoch, so a token minted
	// before a suspension never serves the agent after it is resumed.
	AgentEpoch int64
}

// Minted is a signed token and what evidence records about it.
type Minted struct {
	Token                Secret
	JTI, KeyID, Audience string
	Scopes               []string
	Profile              Profile
	IssuedAt, ExpiresAt  time.Time
	// Reused is true when the token came from the mint cache: it then
	// carries the decision id of the decision that first minted it.
	Reused bool
}

// LogValue implements slog.LogValuer: everything but the token.
func (m Minted) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("jti", m.JTI),
		slog.String("kid", m.KeyID),
		slog.String("audience", m.Audience),
		slog.Any("scopes", m.Scopes),
		slog.String("profile", string(m.Profile)),
		slog.Time("expires_at", m.ExpiresAt),
		slog.Bool("reused", m.Reused),
	)
}

// MinterOptions configures a Minter.
type MinterOptions struct {
	// Issuer is the iss of minted tokens. Required.
	Issuer string
	// MaxTTL caps every token's lifetime; default 5m. It must not exceed
	// the keyring's Retain.
	MaxTTL time.Duration
	// CacheMaxCost is the number of minted tokens kept for reuse; default
	// 100000.
	CacheMaxCost int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Minter signs writ tokens with the keyring's current key and caches them:
// an identical request (same profile, user, agent, actors, tenant, audience,
// scopes, approval, dev flag, TTL and signing key) gets the same token back
// while less than two thirds of its lifetime has passed. A reused token
// carries the decision id of the decision that minted it; evidence should
// record both.
type Minter struct {
	keys   *Keyring
	issuer string
	maxTTL time.Duration
	now    func() time.Time
	cache  *ristretto.Cache[string, *mintEntry]
	stats  cacheCounters
}

type mintEntry struct {
	key        string // the full cache key, checked on every hit
	minted     Minted
	reuseUntil time.Time
}

// NewMinter returns a Minter signing with k. Close it to stop its cache.
func NewMinter(k *Keyring, opts MinterOptions) (*Minter, error) {
	if k == nil {
		return nil, errors.New("tokens: NewMinter needs a keyring")
	}
	if opts.Issuer == "" {
		return nil, errors.New("tokens: minter issuer must not be empty")
	}
	if opts.MaxTTL == 0 {
		opts.MaxTTL = 5 * time.Minute
	}
	if opts.MaxTTL < time.Second {
		return nil, fmt.Errorf("tokens: max TTL %v is below one second", opts.MaxTTL)
	}
	if opts.MaxTTL > k.retain {
		return nil, fmt.Errorf("tokens: max TTL %v exceeds the keyring's retain %v: retired keys would leave the JWKS while their tokens live", opts.MaxTTL, k.retain)
	}
	if opts.CacheMaxCost == 0 {
		opts.CacheMaxCost = 100000
	}
	if opts.CacheMaxCost < 0 {
		return nil, fmt.Errorf("tokens: mint cache size %d is negative", opts.CacheMaxCost)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *mintEntry]{
		NumCounters:        10 * opts.CacheMaxCost,
		MaxCost:            opts.CacheMaxCost,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("tokens: mint cache: %w", err)
	}
	return &Minter{keys: k, issuer: opts.Issuer, maxTTL: opts.MaxTTL, now: opts.Now, cache: cache}, nil
}

// Close releases the mint cache.
func (m *Minter) Close() { m.cache.Close() }

// Mint returns a signed token for r, from the cache when an identical one
// is still fresh.
func (m *Minter) Mint(ctx context.Context, r MintRequest) (Minted, error) {
	profile, err := ParseProfile(string(r.Profile))
	if err != nil {
		return Minted{}, err
	}
	if r.User == "" && r.Agent == "" {
		return Minted{}, fmt.Errorf("%w: no user and no agent", ErrMintRequest)
	}
	if r.Audience == "" {
		return Minted{}, fmt.Errorf("%w: no audience", ErrMintRequest)
	}
	if r.TTL < 0 {
		return Minted{}, fmt.Errorf("%w: negative TTL", ErrMintRequest)
	}
	for i, s := range r.Scopes {
		if !IsScopeToken(s) {
			// The scope itself is left out: it may carry request data.
			return Minted{}, fmt.Errorf("%w: scope %d is not an RFC 6749 scope-token", ErrMintRequest, i)
		}
	}
	ttl := r.TTL
	if ttl == 0 || ttl > m.maxTTL {
		ttl = m.maxTTL
	}
	// NumericDate has one-second precision; keep the lifetime whole.
	ttl = max(ttl.Truncate(time.Second), time.Second)
	scopes := slices.Compact(slices.Sorted(slices.Values(r.Scopes)))
	key := m.keys.current()
	now := m.now()
	ck := mintCacheKey(profile, &r, scopes, ttl, key.kid)

	if !r.NoCache {
		if e, ok := m.cache.Get(ck); ok && e.key == ck && now.Before(e.reuseUntil) && !now.Before(e.minted.IssuedAt) {
			out := e.minted
			out.Scopes = slices.Clone(out.Scopes)
			out.Reused = true
			m.stats.hit()
			return out, nil
		}
		m.stats.miss()
	}

	jti, err := newJTI()
	if err != nil {
		return Minted{}, err
	}
	iat := now.Truncate(time.Second)
	exp := iat.Add(ttl)
	var claims jwt.Claims
	var typ string
	switch profile {
	case TxnToken:
		claims, typ = m.txnClaims(&r, scopes, jti, iat, exp), txnTokenType
	default:
		claims, typ = m.accessClaims(&r, scopes, jti, iat, exp), accessTokenType
	}
	tok := jwt.NewWithClaims(key.method, claims)
	tok.Header["typ"] = typ
	tok.Header["kid"] = key.kid
	signed, err := tok.SignedString(key.private)
	if err != nil {
		return Minted{}, fmt.Errorf("tokens: sign: %w", err)
	}
	out := Minted{
		Token:     Secret(signed),
		JTI:       jti,
		KeyID:     key.kid,
		Audience:  r.Audience,
		Scopes:    scopes,
		Profile:   profile,
		IssuedAt:  iat,
		ExpiresAt: exp,
	}
	// Reuse while less than two thirds of the lifetime has passed.
	window := ttl * 2 / 3
	if reuseUntil := iat.Add(window); !r.NoCache && now.Before(reuseUntil) {
		m.cache.SetWithTTL(ck, &mintEntry{key: ck, minted: out, reuseUntil: reuseUntil}, 1, reuseUntil.Sub(now))
	}
	out.Scopes = slices.Clone(scopes)
	return out, nil
}

// actClaim is the RFC 8693 actor claim, nested nearest first.
type actClaim struct {
	Sub string    `json:"sub"`
	Act *actClaim `json:"act,omitempty"`
}

func actChain(actors []string) *actClaim {
	var act *actClaim
	for _, a := range slices.Backward(actors) {
		act = &actClaim{Sub: a, Act: act}
	}
	return act
}

// accessTokenClaims is the RFC 9068 payload of a writ access token.
type accessTokenClaims struct {
	jwt.RegisteredClaims
	ClientID   string    `json:"client_id,omitempty"`
	Scope      string    `json:"scope,omitempty"`
	Act        *actClaim `json:"act,omitempty"`
	Tenant     string    `json:"tenant,omitempty"`
	DecisionID string    `json:"decision_id,omitempty"`
	ApprovalID string    `json:"approval_id,omitempty"`
	Dev        bool      `json:"dev,omitempty"`
}

func subject(r *MintRequest) string {
	if r.User != "" {
		return r.User
	}
	return r.Agent
}

func (m *Minter) accessClaims(r *MintRequest, scopes []string, jti string, iat, exp time.Time) *accessTokenClaims {
	return &accessTokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.issuer,
			Subject:   subject(r),
			Audience:  jwt.ClaimStrings{r.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(iat),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        jti,
		},
		ClientID:   r.Agent,
		Scope:      strings.Join(scopes, " "),
		Act:        actChain(r.Actors),
		Tenant:     r.Tenant,
		DecisionID: r.DecisionID,
		ApprovalID: r.ApprovalID,
		Dev:        r.Dev,
	}
}

// txnTokenClaims is the Transaction Token payload.
type txnTokenClaims struct {
	jwt.RegisteredClaims            // iss, sub, aud, exp, iat, jti (= txn)
	Txn                  string     `json:"txn"`
	Scope                string     `json:"scope"`
	Context              txnContext `json:"tctx"`
	RequestingWorkload   string     `json:"req_wl,omitempty"`
}

// txnContext is the tctx claim: the authorization context that stays fixed
// along the call chain.
type txnContext struct {
	Tenant     string   `json:"tenant,omitempty"`
	DecisionID string   `json:"decision_id,omitempty"`
	ApprovalID string   `json:"approval_id,omitempty"`
	Actors     []string `json:"actors,omitempty"`
	Dev        bool     `json:"dev,omitempty"`
}

func (m *Minter) txnClaims(r *MintRequest, scopes []string, jti string, iat, exp time.Time) *txnTokenClaims {
	return &txnTokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.issuer,
			Subject:   subject(r),
			Audience:  jwt.ClaimStrings{r.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        jti,
		},
		Txn:   jti,
		Scope: strings.Join(scopes, " "),
		Context: txnContext{
			Tenant:     r.Tenant,
			DecisionID: r.DecisionID,
			ApprovalID: r.ApprovalID,
			Actors:     slices.Clone(r.Actors),
			Dev:        r.Dev,
		},
		RequestingWorkload: r.Agent,
	}
}

// newJTI returns 128 random bits, base64url.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tokens: jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// mintCacheKey hashes everything that makes two tokens interchangeable.
// Fields are length-prefixed so no two requests encode alike. The decision
// id is deliberately absent: a reused token carries the first decision's id.
func mintCacheKey(p Profile, r *MintRequest, scopes []string, ttl time.Duration, kid string) string {
	buf := make([]byte, 0, 256)
	field := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	field(string(p))
	field(r.User)
	field(r.Agent)
	field(r.Tenant)
	field(r.Audience)
	field(r.ApprovalID)
	field(kid)
	buf = binary.AppendUvarint(buf, uint64(len(r.Actors)))
	for _, a := range r.Actors {
		field(a)
	}
	buf = binary.AppendUvarint(buf, uint64(len(scopes)))
	for _, s := range scopes {
		field(s)
	}
	buf = binary.AppendVarint(buf, int64(ttl))
	buf = binary.AppendVarint(buf, r.AgentEpoch)
	if r.Dev {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	sum := sha256.Sum256(buf)
	return string(sum[:])
}

// IsScopeToken reports whether s is an RFC 6749 §3.3 scope-token: one or
// more of %x21 / %x23-5B / %x5D-7E, that is printable ASCII except space,
// '"' and '\'. The scope claim joins scopes with spaces, so anything else
// could be read as a second scope.
func IsScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x21, 0x23 <= c && c <= 0x5b, 0x5d <= c && c <= 0x7e:
		default:
			return false
		}
	}
	return true
}
