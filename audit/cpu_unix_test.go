//go:build unix

package audit_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process has used, or 0
// when the platform cannot say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
