package oauth

import (
	"context"

	"github.com/writ-dev/writ/vaultplugins"
)

// StoredRefreshToken opens the refresh token stored for user at provider,
// so tests can see rotation.
func StoredRefreshToken(ctx context.Context, s *Store, user, provider string) (vaultplugins.Secret, error) {
	a, err := s.load(ctx, user, provider)
	return a.refresh, err
}
