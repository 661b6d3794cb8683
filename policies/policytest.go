package policies

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds each Rego test, as `opa test` does.
const testTimeout = 5 * time.Second

// Test runs the Rego tests (rules named test_*) in dir, beside the policy
// and data files there, and prints the results to w as `opa test` does
// (verbose lists every test, not only failures). Builtin errors fail a test,
// as they fail a decision. A test that errors counts as failed; failing
// tests are not an error, only a policy that cannot be read or compiled is.
func Test(ctx context.Context, dir string, w io.Writer, verbose bool) (passed, failed int, err error) {
	b, err := readTree(os.DirFS(dir), ".", dir, true)
	if err != nil {
		return 0, 0, err
	}
	modules, err := parseModules(b.Modules, dir)
	if err != nil {
		return 0, 0, err
	}
	data, err := ast.InterfaceToValue(b.Data)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: data: not JSON data", ErrCompile)
	}

	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().
			WithDefaultRegoVersion(ast.RegoV1).
			WithEnablePrintStatements(true)).
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(inmem.NewFromASTObject(data.(ast.Object))).
		SetModules(modules).
		CapturePrintOutput(true).
		EnableTracing(verbose).
		RaiseBuiltinErrors(true).
		SetTimeout(testTimeout)
	results, err := runner.RunTests(ctx, nil)
	if err != nil {
		if astErrs, ok := err.(ast.Errors); ok {
			return 0, 0, fmt.Errorf("%w: %s", ErrCompile, astErrorsText(astErrs))
		}
		return 0, 0, fmt.Errorf("policies: run tests in %s: %w", dir, err)
	}

	counted := make(chan *tester.Result)
	go func() {
		defer close(counted)
		for r := range results {
			p, f := countResult(r)
			passed += p
			failed += f
			counted <- r
		}
	}()
	reporter := tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}
	if err := reporter.Report(counted); err != nil {
		return passed, failed, fmt.Errorf("policies: report tests: %w", err)
	}
	return passed, failed, nil
}

// countResult counts a test's leaf results the way the report does; an
// erroring test counts as one failure, a skipped one not at all.
func countResult(r *tester.Result) (passed, failed int) {
	switch {
	case r.Skip:
		return 0, 0
	case r.Error != nil:
		return 0, 1
	case len(r.SubResults) > 0:
		for _, sr := range r.SubResults.Iter {
			if len(sr.SubResults) > 0 {
				continue
			}
			if sr.Fail {
				failed++
			} else {
				passed++
			}
		}
		return passed, failed
	case r.Fail:
		return 0, 1
	default:
		return 1, 0
	}
}
