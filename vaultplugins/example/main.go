// Command example is a complete writ vault backend plugin. It serves static
// values from its own environment: the reference "github" reads
// EXAMPLE_SECRET_GITHUB.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/writ-dev/writ/vaultplugins"
)

type static struct{}

func (static) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	v := os.Getenv("EXAMPLE_SECRET_" + strings.ToUpper(req.Ref))
	if v == "" {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %q", vaultplugins.ErrNotFound, req.Ref)
	}
	return vaultplugins.Credential{Value: vaultplugins.Secret(v), Format: "Bearer {value}", Version: "1"}, nil
}

func (static) Describe(ctx context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "example", Version: "0.1.0"}, nil
}

func main() { vaultplugins.Serve(static{}) }
