// Package test holds black-box tests that build and start the real
// packledger binary and talk to it only over HTTP and NATS, as a
// dealership's tools and an auditor's plain NATS client would.
package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binPath is the packledger binary TestMain built for this run.
var binPath string

const (
	readyTimeout = 30 * time.Second // from exec to the "ready" line
	exitTimeout  = 30 * time.Second // from a signal to the process's exit
	httpTimeout  = 30 * time.Second // one HTTP request
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: ", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "packledger-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: ", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "packledger")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/packledger")
	build.Dir = root
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "test: go build ./cmd/packledger in %s: %v\n%s", root, err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot is the directory holding go.mod, found from the test's own
// directory upwards (go test runs a package's tests in its directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 10; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/packledger/packledger")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("go.mod of github.com/packledger/packledger not found above the test directory")
}

// lockedBuffer collects a process's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running `packledger serve --demo`.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	dataDir string
	HTTP    string            // http://127.0.0.1:PORT
	NATS    string            // nats://127.0.0.1:PORT
	Tokens  map[string]string // MANAGER, ADVISOR, CASHIER, AUDITOR
	stdout  *lockedBuffer
	stderr  *lockedBuffer
	client  *http.Client

	done    chan struct{} // closed when the process has exited and its output is read
	waitErr error         // cmd.Wait's result, valid once done is closed

	ready   chan readyLine    // the ready line, once printed
	tokMu   sync.Mutex        // guards tokens0
	tokens0 map[string]string // the export lines read so far
}

// readyLine is what the ready line says.
type readyLine struct{ http, nats string }

// startServer runs the real binary on dataDir with a fresh HTTP port, a
// fresh NATS port and fresh demo tokens, in its own process group, and
// returns once it has printed its ready line. The process is killed when
// the test ends if it is still running.
func startServer(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	p := spawnServer(t, dataDir, extra...)
	p.awaitReady()
	return p
}

// spawnServer is startServer without the wait for the ready line, so
// that several servers can start at once; awaitReady waits.
//
// Every server here appends any two concurrent writes as one atomic
// batch, so that the crash, cluster and several-servers tests put group
// commit's batches, and their splitting, through what they check; the
// handlers' tests run the default mode.
func spawnServer(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--demo", "--data", dataDir,
		"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--group-commit", "always"}, extra...)
	cmd := exec.Command(binPath, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "TZ=UTC")
	p := &proc{
		t: t, cmd: cmd, dataDir: dataDir, Tokens: map[string]string{},
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{},
		client: &http.Client{Timeout: httpTimeout},
		done:   make(chan struct{}),
		ready:  make(chan readyLine, 1), tokens0: map[string]string{},
	}
	cmd.Stderr = p.stderr
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = pw
	require.NoError(t, cmd.Start(), "start %s", binPath)
	pw.Close() // the child holds its own copy

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.stdout.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
				if k, v, ok := strings.Cut(rest, "="); ok {
					p.tokMu.Lock()
					p.tokens0[k] = v
					p.tokMu.Unlock()
				}
				continue
			}
			if rest, ok := strings.CutPrefix(line, "ready "); ok && !sent {
				var rl readyLine
				for _, f := range strings.Fields(rest) {
					if v, ok := strings.CutPrefix(f, "http="); ok {
						rl.http = v
					}
					if v, ok := strings.CutPrefix(f, "nats="); ok {
						rl.nats = v
					}
				}
				p.ready <- rl
				sent = true
			}
		}
		// Keep reading to EOF so the program never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		<-readDone
		pr.Close()
		p.waitErr = err
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// awaitReady waits for the ready line and reads the demo tokens printed
// before it.
func (p *proc) awaitReady() {
	t := p.t
	t.Helper()
	select {
	case rl := <-p.ready:
		p.HTTP, p.NATS = rl.http, rl.nats
	case <-p.done:
		t.Fatalf("packledger exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", p.waitErr, p.stdout, p.stderr)
	case <-time.After(readyTimeout):
		p.kill()
		t.Fatalf("packledger printed no ready line within %s\nstdout:\n%s\nstderr:\n%s", readyTimeout, p.stdout, p.stderr)
	}
	p.tokMu.Lock()
	for k, v := range p.tokens0 {
		p.Tokens[k] = v
	}
	p.tokMu.Unlock()
	require.True(t, strings.HasPrefix(p.HTTP, "http://127.0.0.1:"), "ready line's http= %q", p.HTTP)
	require.True(t, strings.HasPrefix(p.NATS, "nats://127.0.0.1:"), "ready line's nats= %q", p.NATS)
	for _, role := range []string{"MANAGER", "ADVISOR", "CASHIER", "AUDITOR"} {
		require.NotEmpty(t, p.Tokens[role], "no `export %s=` line before ready; stdout:\n%s", role, p.stdout)
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the exit; it is
// a no-op once the process has exited.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		p.t.Errorf("packledger pid %d did not exit within %s of SIGKILL", p.cmd.Process.Pid, exitTimeout)
	}
}

// requireRunning fails the test if the process has already exited.
func (p *proc) requireRunning() {
	p.t.Helper()
	if p.exited() { // waitErr may be read only once done is closed
		p.t.Fatalf("packledger already exited: %v\nstderr:\n%s", p.waitErr, p.stderr)
	}
}

// Kill is kill -9: the process gets no chance to flush or shut down.
func (p *proc) Kill() {
	p.t.Helper()
	p.requireRunning()
	p.kill()
	require.True(p.t, p.exited())
	var ee *exec.ExitError
	require.ErrorAs(p.t, p.waitErr, &ee, "a SIGKILLed process must not exit normally")
	ws, ok := ee.Sys().(syscall.WaitStatus)
	require.True(p.t, ok)
	require.True(p.t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "wait status %v", ws)
}

// Term sends SIGTERM and requires a clean exit with status 0.
func (p *proc) Term() {
	p.t.Helper()
	p.requireRunning()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		p.kill()
		p.t.Fatalf("packledger did not exit within %s of SIGTERM\nstderr:\n%s", exitTimeout, p.stderr)
	}
	require.NoError(p.t, p.waitErr, "exit after SIGTERM must be status 0\nstderr:\n%s", p.stderr)
	require.Equal(p.t, 0, p.cmd.ProcessState.ExitCode())
}

// token is the demo token of a role: "manager", "advisor", "cashier" or
// "auditor".
func (p *proc) token(role string) string {
	tok := p.Tokens[strings.ToUpper(role)]
	require.NotEmpty(p.t, tok, "no token for role %q", role)
	return tok
}

// do sends one request with a bearer token (empty: none) and decodes the
// JSON object it answers. body may be nil, a string or []byte sent as is,
// or any other value sent as JSON. headers are name, value pairs.
func (p *proc) do(method, path, token string, body any, headers ...string) (int, map[string]any) {
	p.t.Helper()
	status, raw := p.doRaw(method, path, token, body, headers...)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		require.NoError(p.t, d.Decode(&out), "%s %s: answer is not a JSON object: %s", method, path, raw)
	}
	return status, out
}

// doRaw is do without decoding.
func (p *proc) doRaw(method, path, token string, body any, headers ...string) (int, []byte) {
	p.t.Helper()
	a := p.send(token, method, path, body, headers...)
	require.NoError(p.t, a.Err, "stderr:\n%s", p.stderr)
	return a.Status, a.Raw
}

// answer is one HTTP answer, read without failing the test, so that
// goroutines may take it.
type answer struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // the answer decoded, when call decoded it
	Err    error
}

// code is the error code of a refusal, "" for anything else.
func (a answer) code() string {
	e, _ := a.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) String() string {
	if a.Err != nil {
		return a.Err.Error()
	}
	b, _ := json.Marshal(a.Body)
	return fmt.Sprintf("%d %s", a.Status, b)
}

// requestsSent counts the requests sent through send, for tests that
// report their load.
var requestsSent atomic.Int64

// send sends one request with a bearer token (empty: none). body may be
// nil, a string or []byte sent as is, or any other value sent as JSON;
// headers are name, value pairs. It reports failures instead of failing.
func (p *proc) send(token, method, path string, body any, headers ...string) answer {
	requestsSent.Add(1)
	if len(headers)%2 != 0 {
		return answer{Err: errors.New("headers are name, value pairs")}
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return answer{Err: err}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, p.HTTP+path, rd)
	if err != nil {
		return answer{Err: err}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return answer{Err: fmt.Errorf("%s %s%s: %w", method, p.HTTP, path, err)}
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode, Header: resp.Header}
	a.Raw, a.Err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return a
}

// call is send with the answer decoded as a JSON object (numbers kept as
// json.Number); an answer that is not one is an error.
func (p *proc) call(token, method, path string, body any, headers ...string) answer {
	a := p.send(token, method, path, body, headers...)
	if a.Err == nil && len(bytes.TrimSpace(a.Raw)) > 0 {
		d := json.NewDecoder(bytes.NewReader(a.Raw))
		d.UseNumber()
		if err := d.Decode(&a.Body); err != nil {
			a.Err = fmt.Errorf("%s %s%s: %d answer is not a JSON object: %s", method, p.HTTP, path, a.Status, a.Raw)
		}
	}
	return a
}

// as is do with a role's demo token.
func (p *proc) as(role, method, path string, body any, headers ...string) (int, map[string]any) {
	p.t.Helper()
	return p.do(method, path, p.token(role), body, headers...)
}

// mustAs is as, requiring the given status.
func (p *proc) mustAs(want int, role, method, path string, body any, headers ...string) map[string]any {
	p.t.Helper()
	status, out := p.as(role, method, path, body, headers...)
	require.Equal(p.t, want, status, "%s %s as %s: %v", method, path, role, out)
	return out
}

// waitCaughtUp polls /healthz until it answers 200 with the projections
// caught up and NATS connected, and returns that answer.
func (p *proc) waitCaughtUp() map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last map[string]any
	var lastStatus int
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		lastStatus, last = p.do(http.MethodGet, "/healthz", "", nil)
		if lastStatus == http.StatusOK {
			proj, _ := last["projections"].(map[string]any)
			if proj != nil && proj["caught_up"] == true && last["nats_connected"] == true {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("/healthz never reported caught_up within %s: %d %v\nstderr:\n%s", readyTimeout, lastStatus, last, p.stderr)
	return nil
}
