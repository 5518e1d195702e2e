package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// progress prints, once a second, how far a long read has got: on stderr,
// and only when stderr is a terminal. A nil *progress does nothing.
type progress struct {
	w     io.Writer
	label string
	start time.Time
	pos   atomic.Uint64 // where the read is, in the units of total
	n     atomic.Int64  // records read
	total atomic.Uint64
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(stderr io.Writer, label string) *progress {
	if !isTerminal(stderr) {
		return nil
	}
	p := &progress{w: stderr, label: label, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) setTotal(n uint64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *progress) step(pos uint64, n int) {
	if p != nil {
		p.pos.Store(pos)
		p.n.Store(int64(n))
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			fmt.Fprint(p.w, "\r\033[K")
			return
		case <-t.C:
		}
		el := time.Since(p.start).Seconds()
		pos, total, n := p.pos.Load(), p.total.Load(), p.n.Load()
		line := fmt.Sprintf("%s: %d events, %.0f events/s", p.label, n, float64(n)/el)
		if total > 0 && pos > 0 && pos <= total {
			eta := time.Duration(float64(total-pos) / (float64(pos) / el) * float64(time.Second))
			line += fmt.Sprintf(", %d%%, ETA %s", pos*100/total, eta.Round(time.Second))
		}
		fmt.Fprint(p.w, "\r\033[K"+line)
	}
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}
