package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The two entrypoints a policy can define, in order of preference.
var (
	writEntrypoint  = ast.MustParseRef("data.writ.authz.decision")
	envoyEntrypoint = ast.MustParseRef("data.envoy.authz.allow")
)

// maxReportedErrors bounds how many compile errors an error message lists.
const maxReportedErrors = 10

// Options configures an Engine.
type Options struct {
	// Logger receives reload results from Watch. Default: slog.Default().
	Logger *slog.Logger
	// OnReload, when set, is called after every reload Watch makes (the
	// first one when the watch starts, then one per debounced burst of file
	// changes) with the revision serving afterwards and the load error, if
	// any. On an error the revision is the last good one, still serving.
	OnReload func(revision string, err error)
	// Debounce is how long Watch waits after the last file change before it
	// reloads. Default: 100ms.
	Debounce time.Duration
	// DecisionCacheSize is how many decisions the engine keeps, to answer
	// a request whose revision and pruned input (what the policy can read
	// of it) match an earlier one without evaluating the policy again.
	// Only revisions whose decisions are a pure function of their input
	// are cached (see the package documentation). Zero means
	// DefaultDecisionCacheSize (100000); negative disables the cache.
	DecisionCacheSize int
}

// Engine evaluates requests against the current policy revision. It is
// safe for concurrent use; loads swap the revision atomically, and a
// request in flight finishes on the revision it started with.
type Engine struct {
	log      *slog.Logger
	onReload func(string, error)
	debounce time.Duration

	current atomic.Pointer[revision]
	loadMu  sync.Mutex // serialises loads so an older load never wins

	cache       *decisionCache // nil when disabled
	generations atomic.Uint64  // numbers each prepared revision
}

// revision is one compiled, prepared policy revision.
type revision struct {
	id    string
	envoy bool // the query is data.envoy.authz.allow
	query rego.PreparedEvalQuery
	need  *need // what of input the policy can read
	// uncacheable says why this revision's decisions are never cached
	// (it calls a nondeterministic builtin); empty when they may be.
	uncacheable string
	// generation is unique to this revision among the engine's
	// revisions, even when the same content is loaded again; cache
	// entries carry it, so no other revision can see them.
	generation uint64
}

// NewEngine returns an engine serving the embedded default policy.
func NewEngine(opts Options) *Engine {
	e := &Engine{
		log:      opts.Logger,
		onReload: opts.OnReload,
		debounce: opts.Debounce,
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.debounce <= 0 {
		e.debounce = 100 * time.Millisecond
	}
	if size := opts.DecisionCacheSize; size >= 0 {
		if size == 0 {
			size = DefaultDecisionCacheSize
		}
		cache, err := newDecisionCache(size)
		if err != nil {
			e.log.Error("decision cache not available; deciding without it", "error", err)
		}
		e.cache = cache
	}
	rev, err := prepare(context.Background(), DefaultBundle(), "")
	if err != nil {
		panic("policies: embedded default policy: " + err.Error())
	}
	rev.generation = e.generations.Add(1)
	e.current.Store(rev)
	return e
}

// CacheStats returns how many decisions came from the decision cache
// (hits) and how many cacheable requests were evaluated because none
// matched (misses), since the engine was made. Requests decided by a
// revision that is never cached, or with the cache disabled, count as
// neither.
func (e *Engine) CacheStats() (hits, misses uint64) {
	if e.cache == nil {
		return 0, 0
	}
	return e.cache.hits.Load(), e.cache.misses.Load()
}

// Wait blocks until every decision stored so far is in the cache (or has
// been refused by it); tests use it.
func (e *Engine) Wait() {
	if e.cache != nil {
		e.cache.entries.Wait()
	}
}

// Close releases the decision cache and its goroutine. Call it after the
// last Decide has returned, never while one may run; decisions made after
// Close are evaluated without the cache.
func (e *Engine) Close() {
	if e.cache != nil {
		e.cache.entries.Close()
	}
}

// Revision returns the revision currently serving: "sha256:" and the first
// 16 hex digits of a hash over the sorted file names and their contents.
func (e *Engine) Revision() string { return e.current.Load().id }

// LoadDir reads dir (see ReadBundle), compiles and prepares it, and swaps
// it in. On failure the last good revision keeps serving and the error
// names the file and line. Loading content identical to the serving
// revision is a no-op.
func (e *Engine) LoadDir(ctx context.Context, dir string) (string, error) {
	b, err := ReadBundle(dir)
	if err != nil {
		return "", err
	}
	return e.load(ctx, b, dir)
}

// LoadBundle compiles and prepares b and swaps it in, as LoadDir does.
func (e *Engine) LoadBundle(ctx context.Context, b Bundle) (string, error) {
	return e.load(ctx, b, "")
}

// load swaps in b; errors and evaluation locations name files under dir.
func (e *Engine) load(ctx context.Context, b Bundle, dir string) (string, error) {
	id, err := revisionOf(b)
	if err != nil {
		return "", err
	}
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	if cur := e.current.Load(); cur.id == id {
		return id, nil
	}
	rev, err := prepare(ctx, b, dir)
	if err != nil {
		return "", err
	}
	rev.generation = e.generations.Add(1)
	e.current.Store(rev)
	if rev.uncacheable != "" && e.cache != nil {
		e.log.InfoContext(ctx, "decisions of this policy revision are not cached", "revision", rev.id, "reason", rev.uncacheable)
	}
	return rev.id, nil
}

// prepare parses, compiles and prepares a bundle, choosing its query.
// Module locations name files under dir.
func prepare(ctx context.Context, b Bundle, dir string) (*revision, error) {
	id, err := revisionOf(b)
	if err != nil {
		return nil, err
	}
	modules, err := parseModules(b.Modules, dir)
	if err != nil {
		return nil, err
	}

	data, err := ast.InterfaceToValue(orEmptyObject(b.Data))
	if err != nil {
		return nil, fmt.Errorf("%w: data: not JSON data", ErrCompile)
	}
	store := inmem.NewFromASTObject(data.(ast.Object))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}
	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	compiler.Compile(modules)
	store.Abort(ctx, txn)
	if compiler.Failed() {
		return nil, fmt.Errorf("%w: %s", ErrCompile, astErrorsText(compiler.Errors))
	}

	var query ast.Ref
	switch {
	case defines(compiler, writEntrypoint):
		query = writEntrypoint
	case defines(compiler, envoyEntrypoint):
		query = envoyEntrypoint
	case dir != "":
		return nil, fmt.Errorf("%w (in %s)", ErrNoEntrypoint, dir)
	default:
		return nil, ErrNoEntrypoint
	}

	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(query)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, fmt.Errorf("%w: %s", ErrCompile, astErrorsText(astErrs))
		}
		return nil, fmt.Errorf("%w: prepare %s: %w", ErrCompile, query, err)
	}
	return &revision{
		id:          id,
		envoy:       query.Equal(envoyEntrypoint),
		query:       pq,
		need:        inputNeedOf(compiler),
		uncacheable: uncacheableReason(compiler),
	}, nil
}

// parseModules parses Rego v1 modules, reporting every file that fails.
func parseModules(srcs map[string]string, dir string) (map[string]*ast.Module, error) {
	modules := make(map[string]*ast.Module, len(srcs))
	var parseErrs []string
	for _, name := range slices.Sorted(maps.Keys(srcs)) {
		file := displayName(dir, name)
		m, err := ast.ParseModuleWithOpts(file, srcs[name], ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			parseErrs = append(parseErrs, parseErrorText(file, srcs[name], err))
			continue
		}
		modules[name] = m
	}
	if len(parseErrs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrCompile, strings.Join(parseErrs, "; "))
	}
	return modules, nil
}

// defines reports whether any rule produces ref or a document inside it.
func defines(c *ast.Compiler, ref ast.Ref) bool {
	return len(c.GetRulesWithPrefix(ref)) > 0 || len(c.GetRulesForVirtualDocument(ref)) > 0
}

func parseErrorText(name, src string, err error) string {
	var astErrs ast.Errors
	text := err.Error()
	if errors.As(err, &astErrs) {
		text = astErrorsText(astErrs)
	}
	if _, v0err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV0}); v0err == nil {
		text += " (" + name + " is Rego v0 and writ accepts Rego v1 only: put `if` before rule bodies and `contains` in multi-value rules, or add `import rego.v1` and fix what it reports; `opa fmt --v0-v1` rewrites a v0 file)"
	}
	return text
}

func astErrorsText(errs ast.Errors) string {
	parts := make([]string, 0, min(len(errs), maxReportedErrors)+1)
	for i, e := range errs {
		if i == maxReportedErrors {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		if e.Location != nil {
			parts = append(parts, fmt.Sprintf("%s:%d: %s: %s", e.Location.File, e.Location.Row, e.Code, e.Message))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s", e.Code, e.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// Decide evaluates in against the current revision and returns the
// decision and the revision that made it. A policy that produces no
// decision denies ("policy returned no decision"); that is not an error.
// Errors wrap ErrEvaluation or ErrDecisionType; the caller must deny.
// Only what the policy can read of in is converted; in.AttributesFunc is
// called at most once, and only when the policy can read input.attributes.
//
// A successful decision may come from the decision cache, and the one
// returned on a miss is the one cached: its maps, slices and pointers
// (Scopes, Headers, ResponseHeaders, RemoveHeaders, DynamicMetadata,
// Approval, Credential) are shared with every other caller that gets the
// same decision. Treat the returned Decision as read-only; copy what you
// need to change.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, string, error) {
	rev := e.current.Load()
	if in == nil {
		in = &Input{}
	}
	attrs := in.attributesFor(rev.need) // AttributesFunc's one call, if any
	if e.cache != nil && rev.uncacheable == "" {
		// The key comes from the Go input; the OPA value is built only on a
		// miss (see keyFromGo for why equal keys mean equal OPA inputs).
		if key, ok := keyFromGo(rev, in, attrs); ok {
			defer key.release()
			if ctx.Err() != nil {
				return Decision{}, rev.id, evalError(ctx, ctx.Err())
			}
			if d, ok := e.cache.lookup(&key); ok {
				return d, rev.id, nil
			}
			input, err := in.astValueWith(rev.need, attrs)
			if err != nil {
				return Decision{}, rev.id, err
			}
			d, err := rev.evaluate(ctx, input)
			if err != nil {
				return Decision{}, rev.id, err // errors are never cached
			}
			e.cache.store(&key, d)
			return d, rev.id, nil
		}
	}
	// Uncached, or an input with no key, which astValueWith rejects.
	input, err := in.astValueWith(rev.need, attrs)
	if err != nil {
		return Decision{}, rev.id, err
	}
	if ctx.Err() != nil {
		return Decision{}, rev.id, evalError(ctx, ctx.Err())
	}
	d, err := rev.evaluate(ctx, input)
	return d, rev.id, err
}

// evaluate runs the revision's query on input and reads its decision.
func (rev *revision) evaluate(ctx context.Context, input ast.Value) (Decision, error) {
	// Without these options OPA starts a goroutine per evaluation to watch
	// ctx and fills a fresh metrics set nobody reads.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rs, err := rev.query.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(metrics.NoOp()),
	)
	stop()
	if err != nil {
		return Decision{}, evalError(ctx, err)
	}
	switch {
	case len(rs) == 0:
		return Decision{Allow: false, Reason: reasonUndefined}, nil
	case len(rs) > 1 || len(rs[0].Expressions) != 1:
		return Decision{}, fmt.Errorf("%w: the query produced %d results, want one", ErrEvaluation, len(rs))
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return Decision{}, fmt.Errorf("%w: unexpected result type %T", ErrEvaluation, rs[0].Expressions[0].Value)
	}
	var d Decision
	if rev.envoy {
		d, err = envoyDecision(v)
	} else {
		d, err = writDecision(v)
	}
	if err != nil {
		return Decision{}, err
	}
	return d, nil
}

// evalError keeps an evaluation error's code and location but never its
// message, which can quote input values.
func evalError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %w", ErrEvaluation, ctxErr)
	}
	var tdErr *topdown.Error
	if errors.As(err, &tdErr) {
		if tdErr.Location != nil {
			return fmt.Errorf("%w: %s at %s:%d", ErrEvaluation, tdErr.Code, tdErr.Location.File, tdErr.Location.Row)
		}
		return fmt.Errorf("%w: %s", ErrEvaluation, tdErr.Code)
	}
	return fmt.Errorf("%w: %T", ErrEvaluation, err)
}
