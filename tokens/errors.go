package tokens

import "errors"

// Verification errors. Verify wraps exactly one of these, so a caller can map
// it to an OAuth error_description with errors.Is. No error message ever
// contains the token.
var (
	// ErrMalformed: the token is empty, too large, not a JWS compact
	// serialisation, or a claim has the wrong JSON type.
	ErrMalformed = errors.New("tokens: malformed token")
	// ErrUnknownIssuer: the token's iss is not a trusted issuer.
	ErrUnknownIssuer = errors.New("tokens: untrusted issuer")
	// ErrAlgorithm: the token's alg is not allowed for its issuer (none and
	// HMAC never are), or does not fit the key its kid names.
	ErrAlgorithm = errors.New("tokens: signing algorithm not allowed")
	// ErrUnknownKey: no key of the issuer has the token's kid, even after a
	// (rate-limited) refetch of the issuer's key set.
	ErrUnknownKey = errors.New("tokens: unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("tokens: invalid signature")
	// ErrExpired: exp has passed (beyond the leeway), or exp is missing.
	ErrExpired = errors.New("tokens: token expired")
	// ErrNotYetValid: nbf or iat lies in the future (beyond the leeway).
	ErrNotYetValid = errors.New("tokens: token not yet valid")
	// ErrAudience: aud names none of the issuer's accepted audiences.
	ErrAudience = errors.New("tokens: audience not accepted")
	// ErrIssuer: iss is missing or does not match the issuer whose key
	// verified the token.
	ErrIssuer = errors.New("tokens: issuer mismatch")
	// ErrType: the header typ is present and not a JWT access-token type.
	ErrType = errors.New("tokens: token type not accepted")
	// ErrActorChain: act is malformed or nested deeper than allowed.
	ErrActorChain = errors.New("tokens: invalid actor chain")
	// ErrMissingSubject: the token has no sub.
	ErrMissingSubject = errors.New("tokens: token has no subject")
)

// Key and minting errors.
var (
	// ErrKeyDecrypt: a sealed signing key cannot be opened, almost always
	// because the key-encryption key is not the one that sealed it.
	ErrKeyDecrypt = errors.New("tokens: cannot decrypt signing key (wrong key-encryption key?)")
	// ErrKeyEncryptionKey: the key-encryption key is missing, malformed, of
	// the wrong length, or its file is readable by group or other.
	ErrKeyEncryptionKey = errors.New("tokens: invalid key-encryption key")
	// ErrNoCurrentKey: the signing_keys table has no current key.
	ErrNoCurrentKey = errors.New("tokens: no current signing key")
	// ErrProfile: an unknown token profile.
	ErrProfile = errors.New("tokens: unknown token profile")
	// ErrMintRequest: a mint request lacks a subject or an audience, has a
	// negative TTL, or has a scope that is not an RFC 6749 scope-token.
	ErrMintRequest = errors.New("tokens: invalid mint request")
	// ErrRevocation: a revocation could not be stored or loaded.
	ErrRevocation = errors.New("tokens: revocation store")
)
