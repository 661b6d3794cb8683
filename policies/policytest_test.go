package policies_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/policies"
)

func TestTest(t *testing.T) {
	tests := []struct {
		dir                    string
		verbose                bool
		wantPassed, wantFailed int
		wantOutput             []string
		wantErr                error
	}{
		{
			dir: "testdata/regotests", wantPassed: 2, wantFailed: 1,
			wantOutput: []string{"data.writ.authz_test.test_wrong_expectation: FAIL", "PASS: 2/3", "FAIL: 1/3"},
		},
		{
			dir: "testdata/regotests", verbose: true, wantPassed: 2, wantFailed: 1,
			wantOutput: []string{"data.writ.authz_test.test_ok_allowed: PASS", "FAIL: 1/3"},
		},
		{
			// The embedded default policy's own tests.
			dir: "default", wantPassed: 21,
			wantOutput: []string{"PASS: 21/21"},
		},
		{dir: "testdata/syntax_error", wantErr: policies.ErrCompile},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			var out bytes.Buffer
			passed, failed, err := policies.Test(t.Context(), tt.dir, &out, tt.verbose)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Test error = %v, want %v", err, tt.wantErr)
			}
			if passed != tt.wantPassed || failed != tt.wantFailed {
				t.Errorf("Test = %d passed, %d failed; want %d, %d\n%s", passed, failed, tt.wantPassed, tt.wantFailed, out.String())
			}
			for _, want := range tt.wantOutput {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if !tt.verbose && strings.Contains(out.String(), "test_ok_allowed") {
				t.Errorf("quiet output lists a passing test:\n%s", out.String())
			}
		})
	}
}
