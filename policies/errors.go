package policies

import "errors"

// ErrCompile is returned when a policy revision cannot be loaded: a Rego
// module fails to parse or compile, or a data file is malformed. The error
// names the file and line. The last good revision keeps serving.
var ErrCompile = errors.New("policies: policy does not compile")

// ErrNoEntrypoint is returned when a policy revision defines neither
// data.writ.authz.decision nor data.envoy.authz.allow.
var ErrNoEntrypoint = errors.New("policies: policy defines neither data.writ.authz.decision nor data.envoy.authz.allow")

// ErrEvaluation is returned when a policy fails while it is evaluated (a
// conflict between complete rules, a builtin error, a cancelled context).
// The error text never quotes input values.
var ErrEvaluation = errors.New("policies: policy evaluation failed")

// ErrDecisionType is returned when the decision a policy produced has a
// field of the wrong type; the error names the exact path, for example
// "decision.scopes[1]: want string, got number".
var ErrDecisionType = errors.New("policies: decision has the wrong type")
