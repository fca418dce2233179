package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children are the processes the benchmark started. Every one is stopped
// when the benchmark ends, however it ends.
type children struct {
	mu    sync.Mutex
	procs map[*proc]struct{}
}

// proc is one child process; its stdout and stderr go to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

func (cs *children) start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cs.mu.Lock()
	if cs.procs == nil {
		cs.procs = map[*proc]struct{}{}
	}
	cs.procs[p] = struct{}{}
	cs.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
		cs.mu.Lock()
		delete(cs.procs, p)
		cs.mu.Unlock()
	}()
	return p, nil
}

// stopAll ends every child still running: politely, then not.
func (cs *children) stopAll() {
	cs.mu.Lock()
	ps := make([]*proc, 0, len(cs.procs))
	for p := range cs.procs {
		ps = append(ps, p)
	}
	cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.stop(3 * time.Second)
		}()
	}
	wg.Wait()
}

// stop sends SIGTERM and waits up to wait for the process to exit, then
// kills it. It returns the process's exit error (nil for status 0).
func (p *proc) stop(wait time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %v of SIGTERM and was killed", p.name, wait)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// peakRSS is the process's high-water mark of resident memory (VmHWM), in
// bytes. It must be read before the process exits.
func (p *proc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/<pid>/status")
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLines counts the lines of the process's log at WARN and ERROR and
// keeps the first line seen at each, leaving out lines that contain any of
// expected.
func (p *proc) logLines(expected ...string) (count map[string]int, first map[string]string) {
	count, first = map[string]int{}, map[string]string{}
	f, err := os.Open(p.log)
	if err != nil {
		return count, first
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if slices.ContainsFunc(expected, func(e string) bool { return bytes.Contains(line, []byte(e)) }) {
			continue
		}
		for _, lv := range []string{"WARN", "ERROR"} {
			if bytes.Contains(line, []byte("level="+lv)) {
				if count[lv]++; count[lv] == 1 {
					first[lv] = string(line)
				}
			}
		}
	}
	return count, first
}

// freeAddr returns a 127.0.0.1 address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitHTTP polls url until it answers 200, the process exits, or timeout.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.err, p.tail(20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %v:\n%s", p.name, url, timeout, p.tail(20))
}

// cpuTime is the CPU time (user and system) the process has used so far.
// It must be read before the process exits.
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// count start after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command name in /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("too few fields in /proc/<pid>/stat")
	}
	// utime and stime are fields 14 and 15 of the line, 12 and 13 after
	// the name, in clock ticks of 1/100 s on Linux.
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// selfCPU is the CPU time (user and system) the benchmark itself has used:
// its sender, and its receiver when the relay is on.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
