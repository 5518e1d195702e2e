package eventstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is the client address, host:port; port 0 picks a free one.
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	// SyncAlways fsyncs every write before it is acknowledged. JetStream's
	// own default syncs every two minutes, so a power cut can lose writes
	// already acknowledged; a ledger must not lose a payment it confirmed.
	SyncAlways bool
	// Debug logs the server's own messages to stderr.
	Debug bool
}

// Server is a running embedded NATS server with JetStream.
type Server struct {
	srv      *server.Server
	password string   // of the program's own user; never leaves the process
	lock     *os.File // held while the server owns its store dir
}

// The embedded server has two users. The program's own connection signs in
// as ownerUser with a secret made at each start. Any other client, signing
// in with nothing, is readerUser: it may read the stream and follow it, but
// not publish to ledger subjects nor change, purge or delete the stream,
// which the stream's deny_delete and deny_purge alone would not prevent.
const (
	ownerUser  = "packledger"
	readerUser = "reader"
	// ownerInbox prefixes the replies the program receives (publish acks,
	// direct gets). Readers may neither see nor publish there: a forged
	// ack could otherwise make the server confirm a write that never landed.
	ownerInbox = "_PL_OWNER"
)

// readerPermissions lets a NATS client (the nats CLI, an auditor's script)
// inspect the stream, get messages, and create consumers to read them.
var readerPermissions = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
		"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
		"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.DELETE.>",
		"$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.MSG.NEXT.>",
		"$JS.ACK.>", "$JS.FC.>",
	}},
	// No core subscription to the ledger's subjects: that would show a
	// write in flight, signed, before JetStream accepts or refuses it, and
	// a refused write must not be capturable for a later replay. Readers
	// read what is stored, through consumers and direct gets.
	Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.>", "$SYS.>", ownerInbox + ".>", "ledger.>"}},
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	lock, err := lockDir(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	password, err := randomSecret()
	if err != nil {
		lock.Close()
		return nil, err
	}
	readerPassword, err := randomSecret()
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "packledger",
		Users: []*server.User{
			{Username: ownerUser, Password: password},
			{Username: readerUser, Password: readerPassword, Permissions: readerPermissions},
		},
		NoAuthUser: readerUser,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true, // the program owns signals
		NoLog:      !cfg.Debug,
		// The server's own limit on how long a client may stay silent is
		// fine; the HTTP bodies we accept are 1 MiB, events stay far below
		// the default max payload.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Debug {
		srv.ConfigureLogger()
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		lock.Close()
		return nil, fmt.Errorf("nats server on %s did not become ready", cfg.Listen)
	}
	return &Server{srv: srv, password: password, lock: lock}, nil
}

// lockDir takes an exclusive lock on the store dir: nats-server takes
// none, and two servers (a serve and a verify --data, or two serves) on one
// directory would corrupt it. The lock goes with the process, even on
// SIGKILL.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "packledger.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another packledger process (a running serve?): stop it, or read through its NATS with --nats", dir)
	}
	return f, nil
}

func randomSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ClientURL is the address other NATS clients reach the server at.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Connect opens an in-process connection: no TCP on the hot path, while the
// client port stays open for auditors' tools.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.srv), nats.Name(name), nats.MaxReconnects(-1),
		nats.UserInfo(ownerUser, s.password), nats.CustomInboxPrefix(ownerInbox))
	if err != nil {
		return nil, fmt.Errorf("connect in process: %w", err)
	}
	return nc, nil
}

// ConnectTCP opens a connection as the program's own user over the client
// port, as a client on another machine would reach the server: for
// measuring what that path costs beside Connect's. The password never
// leaves the process.
func (s *Server) ConnectTCP(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(s.srv.ClientURL(), nats.Name(name), nats.MaxReconnects(-1),
		nats.UserInfo(ownerUser, s.password), nats.CustomInboxPrefix(ownerInbox))
	if err != nil {
		return nil, fmt.Errorf("connect over tcp: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it to finish, so that its files
// are closed before the process exits.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.lock.Close()
}
