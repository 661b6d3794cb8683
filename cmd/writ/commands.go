package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// configFlags adds --config and --data-dir to fs; the returned function
// loads the configuration with the override applied.
func configFlags(fs *flag.FlagSet) func() (Config, error) {
	configPath := fs.String("config", "", "YAML configuration file")
	dir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	return func() (Config, error) {
		cfg, err := loadConfig(*configPath)
		if err != nil {
			return cfg, err
		}
		override(&cfg.DataDir, *dir)
		return cfg, nil
	}
}

// openDataDir opens the store of an existing data directory. The reading
// and operator commands never create one: a mistyped path is an error, not
// a new empty database.
func openDataDir(ctx context.Context, dir string) (*store.DB, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	return store.OpenSQLite(ctx, dir)
}

func devCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "token" {
		return fmt.Errorf("%w: dev takes one subcommand: token", errUsage)
	}
	fs := newFlags("dev token")
	user := fs.String("user", "", "the user the agent acts for (sub)")
	agent := fs.String("agent", "", "the agent acting for the user (act.sub, client_id)")
	tenant := fs.String("tenant", "", "the tenant claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	dataDir := fs.String("data-dir", "./writ-data", "data directory of the writ that will verify the token")
	var scopes stringsFlag
	fs.Var(&scopes, "scope", "a scope to grant (repeatable, or space-separated)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *user == "" || *agent == "" {
		return fmt.Errorf("%w: dev token needs --user and --agent", errUsage)
	}
	var scopeList []string
	for _, s := range scopes {
		scopeList = append(scopeList, strings.Fields(s)...)
	}
	issuer, err := tokens.OpenDevIssuer(*dataDir)
	if err != nil {
		return err
	}
	tok, err := issuer.Token(tokens.DevTokenRequest{User: *user, Agent: *agent, Tenant: *tenant, Audience: devAudience, Scopes: scopeList, TTL: *ttl})
	if err != nil {
		return err
	}
	// stdout is where the caller asked the token to go (TOKEN=$(writ dev token ...)).
	fmt.Fprintln(stdout, tok.Reveal())
	return nil
}

func policyCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		return fmt.Errorf("%w: policy takes one subcommand: test", errUsage)
	}
	fs := newFlags("policy test")
	verbose := fs.Bool("v", false, "print every test, not only failures")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: policy test takes one directory", errUsage)
	}
	passed, failed, err := policies.Test(ctx, fs.Arg(0), stdout, *verbose)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errFailed
	}
	return nil
}

func keysCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: keys takes one subcommand: rotate", errUsage)
	}
	fs := newFlags("keys rotate")
	config := configFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	dir := cfg.DataDir
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	kek, err := tokens.KeyEncryptionKey(dir)
	if err != nil {
		return err
	}
	k, err := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{Algorithm: cfg.Tokens.Algorithm})
	if err != nil {
		return err
	}
	old := k.CurrentKeyID()
	kid, err := k.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s is current; %s stays published until the tokens it signed have expired\n", kid, old)
	return nil
}

func auditCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit takes a subcommand: verify or show", errUsage)
	}
	fs := newFlags("audit " + args[0])
	config := configFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	dir, rest := cfg.DataDir, fs.Args
	db, err := openDataDir(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	switch args[0] {
	case "verify":
		res, err := audit.Verify(ctx, db)
		if err != nil {
			return err
		}
		if !res.OK {
			fmt.Fprintf(stdout, "evidence chain BROKEN at record %d: %s (%d records read)\n", res.FirstBroken, res.Problem, res.Records)
			return errFailed
		}
		fmt.Fprintf(stdout, "evidence chain OK: %d records\n", res.Records)
		return nil
	case "show":
		if len(rest()) != 1 {
			return fmt.Errorf("%w: audit show takes one decision id", errUsage)
		}
		rec, stored, err := audit.Find(ctx, db, rest()[0])
		if errors.Is(err, audit.ErrNotFound) {
			return fmt.Errorf("no evidence record for decision %s", rest()[0])
		}
		if err != nil {
			return err
		}
		out := struct {
			audit.Record
			Seq      int64  `json:"seq"`
			PrevHash string `json:"prev_hash"`
			Hash     string `json:"hash"`
		}{rec, stored.Seq, stored.PrevHash, stored.Hash}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return fmt.Errorf("%w: unknown audit subcommand %q", errUsage, args[0])
}
