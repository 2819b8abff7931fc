package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpStopsEverythingOnInterrupt runs the real binary: `tend up`, then
// SIGINT as Ctrl-C sends it, then checks that no process it started is left.
func TestUpStopsEverythingOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local control plane")
	}
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(filepath.Join(bin, "kwokctl")); err != nil {
		t.Fatalf("control-plane binaries not found in %s (run `make tools`): %v", bin, err)
	}
	tmp := t.TempDir()
	exe := tendBinary(t)
	work := filepath.Join(tmp, "work")
	cmd := exec.Command(exe, "up", "--bin-dir", bin, "--work-dir", work, "--nodes", "1", "--mcp-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	up := make(chan string, 1)
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			lines <- line
			if strings.Contains(line, "MCP server:") {
				up <- line
			}
		}
		close(lines)
	}()
	select {
	case line := <-up:
		if !strings.Contains(line, "http://127.0.0.1:") {
			t.Errorf("MCP URL not printed: %q", line)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("tend up did not come up; output:\n%s", drain(lines))
	}
	if pids := processesUnder(work); len(pids) == 0 {
		t.Fatalf("no control-plane process runs under %s while tend is up", work)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tend up exited with %v; output:\n%s", err, drain(lines))
		}
	case <-time.After(time.Minute):
		t.Fatalf("tend up did not stop within a minute of SIGINT; output:\n%s", drain(lines))
	}
	if pids := processesUnder(work); len(pids) > 0 {
		t.Fatalf("processes left running after Ctrl-C: %v", pids)
	}
}

// processesUnder lists the PIDs whose command line mentions dir.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " ")[:min(120, len(b))])
		}
	}
	return pids
}

func drain(lines chan string) string {
	var b strings.Builder
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return b.String()
			}
			b.WriteString(l + "\n")
		default:
			return b.String()
		}
	}
}
