//go:build !unix

package audit_test

import "time"

// processCPU is the CPU time this process has used; 0 here, where the
// platform offers no getrusage.
func processCPU() time.Duration { return 0 }
