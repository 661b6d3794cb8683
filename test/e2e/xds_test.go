package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/test/writtest"
)

// controlPlane is a running `writ xds`.
type controlPlane struct {
	ADS    string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	next   int
	change chan struct{}
	closed bool
	stderr strings.Builder
	exited chan struct{}
}

// startControlPlane runs `writ xds` with args and waits for its serving line.
func startControlPlane(t *testing.T, bin string, args ...string) *controlPlane {
	t.Helper()
	cp := &controlPlane{change: make(chan struct{}), exited: make(chan struct{})}
	cp.cmd = exec.Command(bin, append([]string{"xds"}, args...)...)
	cp.cmd.Stderr = &lockedBuilder{mu: &cp.mu, b: &cp.stderr}
	pipe, err := cp.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			cp.mu.Lock()
			cp.lines = append(cp.lines, sc.Text())
			close(cp.change)
			cp.change = make(chan struct{})
			cp.mu.Unlock()
		}
		cp.mu.Lock()
		cp.closed = true
		close(cp.change)
		cp.mu.Unlock()
		_ = cp.cmd.Wait()
		close(cp.exited)
	}()
	t.Cleanup(func() { cp.stop(t) })
	cp.ADS = cp.waitForLine(t, regexp.MustCompile(`^writ xds serving: ads=(\S+)`))[1]
	return cp
}

type lockedBuilder struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (cp *controlPlane) waitForLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		cp.mu.Lock()
		for i := cp.next; i < len(cp.lines); i++ {
			if m := re.FindStringSubmatch(cp.lines[i]); m != nil {
				cp.next = i + 1
				cp.mu.Unlock()
				return m
			}
		}
		closed, change := cp.closed, cp.change
		cp.mu.Unlock()
		if closed {
			t.Fatalf("writ xds exited before printing %s\nstdout: %q\nstderr:\n%s", re, cp.lines, cp.stderrText())
		}
		select {
		case <-change:
		case <-deadline.C:
			t.Fatalf("writ xds printed no line matching %s\nstdout: %q\nstderr:\n%s", re, cp.lines, cp.stderrText())
		}
	}
}

func (cp *controlPlane) stderrText() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.stderr.String()
}

func (cp *controlPlane) stop(t *testing.T) {
	select {
	case <-cp.exited:
		return
	default:
	}
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.exited:
	case <-time.After(30 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.exited
		t.Errorf("writ xds did not stop on SIGTERM")
	}
}

func writePolicy(t *testing.T, dir, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

func allowOnly(tool string) string {
	return fmt.Sprintf("package writ.authz\n\ndecision := {\"allow\": input.mcp.name == %q}\n", tool)
}

// TestPolicyPropagation: one `writ xds`, two `writ serve --xds` replicas.
// A policy change reaches both; a policy they cannot compile is NACKed with
// the compile error and the old revision is still enforced; with the
// control plane gone the replicas keep deciding, and they follow a
// restarted one.
func TestPolicyPropagation(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	dir := t.TempDir()
	writePolicy(t, dir, allowOnly("search_issues"))
	// --validate=false: the control plane publishes what it reads, so the
	// replicas' own compile check is what stops a broken policy here.
	cp := startControlPlane(t, bin, "--policies", dir, "--listen", "127.0.0.1:0", "--validate=false")
	rev1 := cp.waitForLine(t, regexp.MustCompile(`^writ xds published: source=policy version=(\S+)`))[1]

	var replicas []*writtest.Writ
	for range 2 {
		replicas = append(replicas, writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}, Args: []string{"--xds", cp.ADS}}))
	}
	inbound := idp.Delegated(t, "alice", "research-bot", "tenant-a")
	enforces := func(step string, allowed, denied string) {
		t.Helper()
		for i, w := range replicas {
			for tool, want := range map[string]bool{allowed: true, denied: false} {
				resp, err := w.Check(t.Context(), writtest.ToolCall(tool, nil, inbound, nil))
				if err != nil {
					t.Fatalf("%s: replica %d: %v", step, i, err)
				}
				if got := resp.GetOkResponse() != nil; got != want {
					t.Errorf("%s: replica %d: %s allowed=%t, want %t", step, i, tool, got, want)
				}
			}
		}
	}
	for i, w := range replicas {
		if !strings.Contains(w.Stdout(), "writ policy revision: "+rev1) {
			t.Errorf("replica %d did not report revision %s:\n%s", i, rev1, w.Stdout())
		}
	}
	enforces("first revision", "search_issues", "list_repos")

	// A change reaches every replica.
	writePolicy(t, dir, allowOnly("list_repos"))
	rev2 := cp.waitForLine(t, regexp.MustCompile(`^writ xds published: source=policy version=(\S+)`))[1]
	for _, w := range replicas {
		w.WaitForLine(t, regexp.MustCompile(`^writ policy revision: `+regexp.QuoteMeta(rev2)+`$`), 30*time.Second)
	}
	enforces("second revision", "list_repos", "search_issues")

	// A broken policy: each replica NACKs it with the compile error.
	// (The NACKs can be printed before the control plane's own "published"
	// line, so only they are waited for.)
	writePolicy(t, dir, "package writ.authz\n\ndecision := {\"allow\": \n")
	for range replicas {
		m := cp.waitForLine(t, regexp.MustCompile(`^writ xds nack: node=(\S+) type=\S+ version=\S+ error="(.*)"$`))
		if !strings.Contains(m[2], "rego_parse_error") {
			t.Errorf("NACK from %s without the compile error: %q", m[1], m[2])
		}
	}
	enforces("after the NACK", "list_repos", "search_issues")

	// The control plane goes away: the replicas keep deciding.
	cp.stop(t)
	enforces("control plane down", "list_repos", "search_issues")

	// A new control plane on the same address (validating this time): the
	// replicas reconnect and follow the next change.
	writePolicy(t, dir, allowOnly("create_issue"))
	cp2 := startControlPlane(t, bin, "--policies", dir, "--listen", cp.ADS)
	rev3 := cp2.waitForLine(t, regexp.MustCompile(`^writ xds published: source=policy version=(\S+)`))[1]
	for _, w := range replicas {
		w.WaitForLine(t, regexp.MustCompile(`^writ policy revision: `+regexp.QuoteMeta(rev3)+`$`), 30*time.Second)
	}
	enforces("restarted control plane", "create_issue", "list_repos")

	// The validating control plane rejects a broken edit itself.
	writePolicy(t, dir, "package writ.authz\n\ndecision := {\"allow\": \n")
	m := cp2.waitForLine(t, regexp.MustCompile(`^writ xds rejected: source=policy error="(.*)"$`))
	if !strings.Contains(m[1], "rego_parse_error") {
		t.Errorf("rejection without the compile error: %q", m[1])
	}
	enforces("after a rejected edit", "create_issue", "list_repos")
}

func TestServeXDSRejectsPolicies(t *testing.T) {
	bin := writtest.Build(t)
	out, err := exec.Command(bin, "serve", "--xds", "127.0.0.1:1", "--policies", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "with --xds the policy comes only from the control plane") {
		t.Errorf("serve --xds --policies: err=%v, output:\n%s", err, out)
	}
}
