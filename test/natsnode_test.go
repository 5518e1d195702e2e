package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// The real nats-server binary, built from the module this project already
// depends on, so that a node can be killed with SIGKILL like any process
// and come back on its own files. Built once, on first use.
var (
	natsBinOnce sync.Once
	natsBinPath string
	natsBinErr  error
)

func natsServerBin(t *testing.T) string {
	t.Helper()
	natsBinOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			natsBinErr = err
			return
		}
		natsBinPath = filepath.Join(filepath.Dir(binPath), "nats-server")
		build := exec.Command("go", "build", "-o", natsBinPath, "github.com/nats-io/nats-server/v2")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	require.NoError(t, natsBinErr)
	return natsBinPath
}

// freePort asks the kernel for a free loopback port. The port is closed
// again before the caller binds it; on a test machine nothing else takes
// it in between, and a node must keep its port across restarts anyway.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsNode is one nats-server process with JetStream, fsyncing every
// write, on loopback ports that it keeps across restarts.
type natsNode struct {
	t          *testing.T
	Name       string
	ClientPort int
	RoutePort  int // 0: not clustered
	StoreDir   string
	conf       string
	cmd        *exec.Cmd
	log        *lockedBuffer
	done       chan struct{}
}

// URL is the node's client address.
func (n *natsNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.ClientPort) }

// newNATSNode writes the configuration of one node; routes are the other
// nodes' route ports, empty for a node on its own.
func newNATSNode(t *testing.T, dir, name string, clientPort, routePort int, routes []int) *natsNode {
	t.Helper()
	n := &natsNode{t: t, Name: name, ClientPort: clientPort, RoutePort: routePort,
		StoreDir: filepath.Join(dir, name), conf: filepath.Join(dir, name+".conf")}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\n", name, clientPort)
	// sync_interval always: a node acknowledges a write only once it is on
	// its disk, as packledger's embedded server does.
	fmt.Fprintf(&b, "jetstream { store_dir: %q, sync_interval: always }\n", n.StoreDir)
	if routePort != 0 {
		var rs []string
		for _, p := range routes {
			rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
		fmt.Fprintf(&b, "cluster { name: packledger, listen: 127.0.0.1:%d, routes: [%s] }\n", routePort, strings.Join(rs, ", "))
	}
	require.NoError(t, os.WriteFile(n.conf, []byte(b.String()), 0o600))
	return n
}

// Start runs the node and waits until its client port answers.
func (n *natsNode) Start() {
	n.t.Helper()
	n.cmd = exec.Command(natsServerBin(n.t), "-c", n.conf)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	n.log = &lockedBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	require.NoError(n.t, n.cmd.Start())
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	n.t.Cleanup(func() { n.Kill() })
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.ClientPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			n.t.Fatalf("nats-server %s exited at start:\n%s", n.Name, n.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.t.Fatalf("nats-server %s did not listen on %d within %s:\n%s", n.Name, n.ClientPort, readyTimeout, n.log)
}

// Running reports whether the process is alive.
func (n *natsNode) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill is SIGKILL: the node gets no chance to hand over leadership or
// flush anything.
func (n *natsNode) Kill() { n.signalAndWait(syscall.SIGKILL) }

// Stop is SIGTERM: a clean shutdown.
func (n *natsNode) Stop() { n.signalAndWait(syscall.SIGTERM) }

func (n *natsNode) signalAndWait(sig syscall.Signal) {
	if !n.Running() {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, sig)
	select {
	case <-n.done:
	case <-time.After(exitTimeout):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
		n.t.Errorf("nats-server %s did not exit within %s of %v", n.Name, exitTimeout, sig)
	}
}

// natsCluster is three nodes routed to each other.
type natsCluster struct {
	Nodes []*natsNode
}

func startNATSCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	dir := t.TempDir()
	clients, routes := make([]int, size), make([]int, size)
	for i := range size {
		clients[i], routes[i] = freePort(t), freePort(t)
	}
	c := &natsCluster{}
	for i := range size {
		var others []int
		for j := range size {
			if j != i {
				others = append(others, routes[j])
			}
		}
		c.Nodes = append(c.Nodes, newNATSNode(t, dir, fmt.Sprintf("n%d", i+1), clients[i], routes[i], others))
	}
	for _, n := range c.Nodes {
		n.Start()
	}
	return c
}

// URLs is every node's client address, as --nats takes them.
func (c *natsCluster) URLs() string {
	var us []string
	for _, n := range c.Nodes {
		us = append(us, n.URL())
	}
	return strings.Join(us, ",")
}

// Node finds a node by server name.
func (c *natsCluster) Node(name string) *natsNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Logs is every node's output, for a failure message.
func (c *natsCluster) Logs() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		if n.log != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", n.Name, n.log)
		}
	}
	return b.String()
}

// watcher is a plain client of the cluster, for what only JetStream can
// say: who leads the stream, and whether every replica is current.
type watcher struct {
	t  *testing.T
	nc *nats.Conn
	js jetstream.JetStream
}

func newWatcher(t *testing.T, urls string) *watcher {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &watcher{t: t, nc: nc, js: js}
}

// info is the stream's info as its leader gives it, or nil while there is
// no leader to ask.
func (w *watcher) info(stream string) *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := w.js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	return st.CachedInfo()
}
