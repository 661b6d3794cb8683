// Command writ is an Envoy external-authorization server for AI-agent
// traffic. See the README for the quick start.
//
//	writ serve [--config writ.yaml] [--dev]   run everything
//	writ check --tool NAME --args JSON         send one Check to a running writ
//	writ dev token --user U --agent A          mint a development token
//	writ policy test DIR                       run Rego tests
//	writ keys rotate                           publish a new signing key
//	writ audit verify | show DECISION_ID       read the evidence log
//	writ xds --mesh FILE --policies DIR        serve Envoy config and policy over ADS
//	writ xds render --mesh FILE                print the Envoy resources a mesh makes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `writ — decides every agent request, mints a token for exactly that call, and records why.

Usage:
  writ serve  [--config FILE] [--grpc ADDR] [--http ADDR] [--api ADDR] [--data-dir DIR] [--policies DIR | --xds ADDR] [--dev]
  writ check  --tool NAME [--args JSON] [--token T] [--addr ADDR] [--resource ID] [--tenant T] [--sensitivity S]
  writ dev token --user U --agent A [--tenant T] [--scope S]... [--ttl D] [--data-dir DIR]
  writ policy test [-v] DIR
  writ keys rotate [--config FILE] [--data-dir DIR]
  writ approvals list [--all] | show ID | approve --as SUBJECT ID | deny --as SUBJECT ID
  writ agents list [--status S] [--tenant T] | show ID | approve --as SUBJECT ID | suspend --as SUBJECT [--reason R] ID | resume --as SUBJECT ID | delete ID
  writ vault put [--header H] [--format F] [--ttl D] REF < value
  writ vault list | delete REF | rotate --old-key-file F   [--config FILE] [--data-dir DIR]
  writ audit verify [--config FILE] [--data-dir DIR]
  writ audit show [--config FILE] [--data-dir DIR] DECISION_ID
  writ xds    [--mesh FILE] [--policies DIR] [--listen ADDR] [--api ADDR] [--validate=false]
  writ xds render --mesh FILE [--format yaml|json]

Run "writ COMMAND --help" for a command's flags.
`

// errUsage marks a command-line mistake: the usage is printed and writ exits 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stdout, stderr)
	case "check":
		err = checkCommand(ctx, args[1:], stdout)
	case "dev":
		err = devCommand(args[1:], stdout)
	case "policy":
		err = policyCommand(ctx, args[1:], stdout)
	case "keys":
		err = keysCommand(ctx, args[1:], stdout)
	case "approvals":
		err = approvalsCommand(ctx, args[1:], stdout)
	case "agents":
		err = agentsCommand(ctx, args[1:], stdout)
	case "vault":
		err = vaultCommand(ctx, args[1:], stdin, stdout)
	case "audit":
		err = auditCommand(ctx, args[1:], stdout)
	case "xds":
		err = xdsCommand(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "writ: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "writ: %v\n\n%s", err, usage)
		return 2
	case errors.Is(err, errFailed):
		return 1 // the command already said why
	default:
		fmt.Fprintf(stderr, "writ: %v\n", err)
		return 1
	}
}

// errFailed ends a command that has printed its own failure.
var errFailed = errors.New("failed")

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("writ "+name, flag.ContinueOnError)
	return fs
}

// stringsFlag collects a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return fmt.Sprint(*s) }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }
