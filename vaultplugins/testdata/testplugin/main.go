// Command testplugin is a vault backend plugin for the host's tests. Magic
// references make it misbehave.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/writ-dev/writ/vaultplugins"
)

type backend struct{}

func (backend) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	switch req.Ref {
	case "crash":
		os.Exit(3)
	case "hang":
		<-ctx.Done()
		return vaultplugins.Credential{}, ctx.Err()
	case "over": // above the 64 KiB cap, below gRPC's receive limit
		return vaultplugins.Credential{Value: vaultplugins.Secret(strings.Repeat("o", 66000))}, nil
	case "big": // far above gRPC's receive limit
		return vaultplugins.Credential{Value: vaultplugins.Secret(strings.Repeat("b", 1<<20))}, nil
	case "env":
		vals := map[string]vaultplugins.Secret{}
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			vals[k] = "1"
		}
		return vaultplugins.Credential{Value: "env", Values: vals}, nil
	case "notfound":
		return vaultplugins.Credential{}, fmt.Errorf("%w: %q", vaultplugins.ErrNotFound, req.Ref)
	case "denied":
		return vaultplugins.Credential{}, fmt.Errorf("tenant %s: %w", req.Tenant, vaultplugins.ErrDenied)
	case "revoked":
		return vaultplugins.Credential{}, vaultplugins.ErrRevoked
	case "unavailable":
		return vaultplugins.Credential{}, fmt.Errorf("%w: upstream down", vaultplugins.ErrUnavailable)
	case "invalid":
		return vaultplugins.Credential{}, vaultplugins.ErrInvalidRequest
	case "plain":
		return vaultplugins.Credential{}, errors.New("something broke")
	}
	return vaultplugins.Credential{
		Value:   vaultplugins.Secret("value-of-" + req.Ref),
		Header:  "X-Api-Key",
		Version: strconv.Itoa(os.Getpid()),
	}, nil
}

func (backend) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "testplugin", Version: "0.0.1"}, nil
}

func main() {
	if path := os.Getenv("TESTPLUGIN_MARKER"); path != "" {
		os.WriteFile(path, []byte("ran"), 0o600)
	}
	vaultplugins.Serve(backend{})
}
