package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Signing algorithms writ can generate keys for.
const (
	ES256 = "ES256"
	RS256 = "RS256"
	EdDSA = "EdDSA"
)

// rsaKeyBits is the size of generated RSA keys; minRSABits the smallest
// accepted from a trusted issuer.
const (
	rsaKeyBits = 2048
	minRSABits = 2048
)

// verifyMethods are the asymmetric algorithms an issuer allowlist may name.
var verifyMethods = map[string]jwt.SigningMethod{
	"ES256": jwt.SigningMethodES256,
	"ES384": jwt.SigningMethodES384,
	"ES512": jwt.SigningMethodES512,
	"RS256": jwt.SigningMethodRS256,
	"RS384": jwt.SigningMethodRS384,
	"RS512": jwt.SigningMethodRS512,
	"PS256": jwt.SigningMethodPS256,
	"PS384": jwt.SigningMethodPS384,
	"PS512": jwt.SigningMethodPS512,
	"EdDSA": jwt.SigningMethodEdDSA,
}

// forbiddenAlgorithm reports why alg may never verify a token, or "".
func forbiddenAlgorithm(alg string) string {
	switch {
	case strings.EqualFold(alg, "none"):
		return "unsigned"
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return "symmetric"
	}
	return ""
}

// generateSigningKey makes a fresh private key for alg.
func generateSigningKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaKeyBits)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("tokens: cannot generate %q keys (want ES256, RS256 or EdDSA)", alg)
}

// keyFits reports whether a public key may verify signatures of alg. It is
// the second guard, after the allowlist, against algorithm confusion: an
// HMAC "key" ([]byte) never fits, and an EC key never verifies RSA.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= minRSABits
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// publicKey returns the public half of a key read from a JWK set, which may
// hold private keys (a jwks_file copied from an issuer's own store).
func publicKey(key any) any {
	if s, ok := key.(crypto.Signer); ok {
		return s.Public()
	}
	return key
}
