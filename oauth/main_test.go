package oauth_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/tokens"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type nopMinter struct{}

func (nopMinter) Mint(context.Context, tokens.MintRequest) (tokens.Minted, error) {
	return tokens.Minted{}, nil
}
