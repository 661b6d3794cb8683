package tokens_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, must
// wrap exactly one sentinel on failure, must never echo the token in an
// error, and must never return an identity for a token the trusted key did
// not sign. Seeds: testdata/tokens/*.jwt.
func FuzzVerify(f *testing.F) {
	for _, raw := range readSeeds(f) {
		f.Add(raw)
	}
	v := fixtureVerifier(f)
	trusted := loadFixtureKey(f).Public()
	independent := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error wraps %d sentinels: %v", n, err)
			}
			if len(raw) >= 16 && strings.Contains(err.Error(), raw) {
				t.Fatal("error message contains the token")
			}
			return
		}
		if id == nil || id.Issuer != idpName {
			t.Fatalf("accepted with identity %+v", id)
		}
		if _, perr := independent.Parse(raw, func(*jwt.Token) (any, error) { return trusted, nil }); perr != nil {
			t.Fatalf("accepted a token the trusted key did not sign: %v", perr)
		}
	})
}
