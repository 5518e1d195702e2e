package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// startup starts this same program as serve on a generated ledger, three
// times, and times each start until /healthz says the projections are
// caught up. The first start finds no projection checkpoint; it is
// stopped with SIGTERM, as an operator stops serve, and the second start
// finds what the first left, if serve keeps checkpoints at all.
//
// The bench writes its 5M events minutes before, so all of them are
// inside the stream's duplicate window (an hour by default), and
// nats-server, recovering the stream, reads every message of the window
// to remember its Nats-Msg-Id: about 9 s of the second start on the
// machines of BENCHMARKS.md. A ledger that took months to reach 5M
// events has an hour's writes in its window. So the stream's window is
// then narrowed to a second, and the third start, startup_checkpoint,
// is a start on a ledger whose events are older than its window.
func (b *benchRun) startup(ctx context.Context) ([]benchResult, error) {
	dir, cleanup, err := b.dir("startup")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	ds, err := b.dataset(ctx, "startup", dir, b.sz.startupEvents)
	if err != nil {
		return nil, err
	}
	checkpoints := b.serveHasFlag(ctx, "checkpoints")
	note := "serve has no --checkpoints in this build: every start replays the whole log"
	if checkpoints {
		note = "serve keeps projection checkpoints (--checkpoints, on by default)"
	}
	var out []benchResult
	for _, start := range []struct{ name, note string }{
		{"startup_no_checkpoint", "every event inside the stream's duplicate window"},
		{"startup_checkpoint_fresh", "every event inside the stream's duplicate window, as the bench just wrote them"},
		{"startup_checkpoint", "the events older than the stream's duplicate window, as in a ledger that took months to fill"},
	} {
		if start.name == "startup_checkpoint" {
			if err := b.ageDuplicateWindow(ctx, dir); err != nil {
				return nil, fmt.Errorf("%s: %w", start.name, err)
			}
		}
		b.progress("%s: serve on %d events", start.name, ds.messages)
		s, err := b.startServe(ctx, dir, ds.messages)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", start.name, err)
		}
		from := "read the whole log"
		if s.resumed > 0 {
			from = fmt.Sprintf("resumed from the checkpoint at seq %d", s.resumed)
		}
		if len(s.ignored) > 0 {
			from += fmt.Sprintf(" (passed over: %s)", strings.Join(s.ignored, "; "))
		}
		out = append(out, benchResult{Name: start.name, OpsPerS: opsRate(int(ds.messages), s.ready), Events: ds.messages,
			Packages: s.packages, Seconds: round(s.ready.Seconds(), 2), StopSeconds: round(s.stop.Seconds(), 2),
			ResumedSeq: s.resumed, Note: "from exec to /healthz caught up; " + from + "; " + start.note + "; " + note})
	}
	return out, nil
}

// ageDuplicateWindow narrows the duplicate window of the ledger's stream
// in dir to a second (serve keeps an existing stream's window), so that
// none of the generated events is in it.
func (b *benchRun) ageDuplicateWindow(ctx context.Context, dir string) error {
	node, c, err := benchNode(ctx, dir, b.log)
	if err != nil {
		return err
	}
	defer node.shutdown()
	js, err := jetstream.New(node.nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, c.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.stream, err)
	}
	cfg := stream.CachedInfo().Config
	cfg.Duplicates = time.Second
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("narrowing the duplicate window of %s: %w", c.stream, err)
	}
	return nil
}

// serveHasFlag tells whether this program's serve takes --name.
func (b *benchRun) serveHasFlag(ctx context.Context, name string) bool {
	out, _ := exec.CommandContext(ctx, b.exe, "serve", "-h").CombinedOutput()
	return strings.Contains(string(out), "  -"+name)
}

// serveStart is one timed start and stop of serve.
type serveStart struct {
	ready, stop time.Duration
	packages    int
	// resumed is the sequence the start resumed after, 0 if it read the
	// whole stream; ignored, why it passed checkpoints over.
	resumed uint64
	ignored []string
}

// startServe runs serve on dir, waits until its /healthz says caught up
// with at least head applied, and stops it with SIGTERM.
func (b *benchRun) startServe(ctx context.Context, dir string, head uint64) (serveStart, error) {
	ctx, cancel := context.WithTimeout(ctx, b.sz.readTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.exe, "serve", "--data", dir, "--demo",
		"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Stderr = b.stderr
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return serveStart{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return serveStart{}, err
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "ready http="); ok {
				u, _, _ := strings.Cut(rest, " ")
				urls <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-exited:
		stopped = true
		return serveStart{}, fmt.Errorf("serve exited before it was ready: %v", err)
	case <-ctx.Done():
		return serveStart{}, fmt.Errorf("serve not ready: %w", ctx.Err())
	}
	var s serveStart
	for {
		h, err := health(ctx, base)
		if err == nil && h.Projections.Ready && h.Projections.AppliedSeq >= head {
			s.ready, s.packages = time.Since(start), h.Projections.Packages
			if ck := h.Projections.Checkpoint; ck != nil {
				s.resumed, s.ignored = ck.Seq, ck.Ignored
			}
			break
		}
		select {
		case err := <-exited:
			stopped = true
			return serveStart{}, fmt.Errorf("serve exited while catching up: %v", err)
		case <-ctx.Done():
			return serveStart{}, fmt.Errorf("not caught up (last /healthz: %+v, %v): %w", h.Projections, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return serveStart{}, err
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return serveStart{}, fmt.Errorf("serve stopped with %w", err)
		}
	case <-time.After(time.Minute):
		return serveStart{}, errors.New("serve did not stop within a minute of SIGTERM")
	}
	s.stop = time.Since(t0)
	return s, nil
}

// healthAnswer is the part of /healthz the bench reads.
type healthAnswer struct {
	Projections struct {
		Ready      bool   `json:"caught_up"`
		AppliedSeq uint64 `json:"applied_seq"`
		Packages   int    `json:"packages"`
		Checkpoint *struct {
			Seq     uint64   `json:"seq"`
			Ignored []string `json:"ignored"`
		} `json:"checkpoint"`
	} `json:"projections"`
}

func health(ctx context.Context, base string) (healthAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var h healthAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("/healthz: %s", resp.Status)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}
