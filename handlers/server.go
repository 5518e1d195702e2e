package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
	"github.com/packledger/packledger/projections"
)

// Ledger is what the handlers need of the event store.
type Ledger interface {
	Update(ctx context.Context, subject string, meta eventstore.Meta, now eventstore.Clock,
		decide func([]domain.Envelope) (eventstore.Change, error)) (eventstore.Result, error)
	Load(ctx context.Context, subject string) ([]domain.Envelope, error)
	Subjects() eventstore.Subjects
}

// Reads is what the handlers need of the projections.
type Reads interface {
	WaitFor(ctx context.Context, seq uint64) error
	WaitReady(ctx context.Context) error
	Read(func(*projections.Model))
	Status() projections.Status
	// AsOf is when the read models were last known to hold the whole
	// log; zero if not yet known.
	AsOf() time.Time
}

// Config is the server's settings.
type Config struct {
	Dealer       string
	DefaultStore string // for users the users file gives no store
	TZ           *time.Location
	Clock        func() time.Time
	Log          *slog.Logger
	// NATSConnected reports whether the store's connection is up.
	NATSConnected func() bool
	// KeyFingerprint names the ledger's signing key; the daily close
	// prints it so that it is on paper.
	KeyFingerprint string
	// WriteWait bounds how long a write's answer waits for the
	// projections to apply it.
	WriteWait time.Duration
	// SecureCookies marks the web desk's cookies Secure even when a
	// request came without TLS: for a desk served by a proxy that ends TLS.
	SecureCookies bool
	// WriteTimeout bounds how long a write waits for JetStream to decide
	// and confirm it. Past it the answer is 503 and the till retries with
	// the same key: better than holding it while a cluster elects a
	// leader.
	WriteTimeout time.Duration
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	scanner Scanner
	ledger  Ledger
	reads   Reads
	log     *slog.Logger
	clock   func() time.Time
	userp   atomic.Pointer[[]User]
	desk    *desk
}

// LedgerScanner is a ledger that the auditor's routes can also read whole.
type LedgerScanner interface {
	Ledger
	Scanner
}

// New returns the API over a ledger and its projections.
func New(cfg Config, ledger LedgerScanner, reads Reads, users []User) *Server {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.TZ == nil {
		cfg.TZ = time.UTC
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	s := &Server{cfg: cfg, ledger: ledger, scanner: ledger, reads: reads, log: cfg.Log, clock: cfg.Clock, desk: newDesk()}
	s.SetUsers(users)
	return s
}

// SetUsers replaces the users, as when the users file is re-read.
func (s *Server) SetUsers(users []User) { s.userp.Store(&users) }

func (s *Server) users() []User { return *s.userp.Load() }

// now is the instant commands are decided at, in the dealer's time zone,
// so that calendar rules (validity months clamped to a month's end, free
// look days) follow the dealer's calendar, not the server's.
func (s *Server) now() time.Time { return s.clock().In(s.cfg.TZ) }

// Handler returns the routes of DESIGN.md §5.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)

	mux.HandleFunc("POST /v1/plans", s.allow(s.definePlan, managerOnly...))
	mux.HandleFunc("GET /v1/plans", s.allow(s.fromModel(s.listPlans), anyRole...))
	mux.HandleFunc("GET /v1/plans/{code}", s.allow(s.fromModel(s.getPlan), anyRole...))
	mux.HandleFunc("POST /v1/plans/{code}/retire", s.allow(s.retirePlan, managerOnly...))

	mux.HandleFunc("POST /v1/packages", s.allow(s.sell, advisorOnly...))
	mux.HandleFunc("GET /v1/packages", s.allow(s.fromModel(s.findPackages), anyRole...))
	mux.HandleFunc("GET /v1/packages/{id}", s.allow(s.fromModel(s.getPackage), anyRole...))
	mux.HandleFunc("POST /v1/packages/{id}/payments", s.allow(s.recordPayment, cashierOnly...))
	mux.HandleFunc("POST /v1/packages/{id}/payments/{pid}/void", s.allow(s.voidPayment, managerOnly...))
	mux.HandleFunc("POST /v1/packages/{id}/redemptions", s.allow(s.redeem, advisorOnly...))
	mux.HandleFunc("POST /v1/packages/{id}/redemptions/{rid}/reverse", s.allow(s.reverse, managerOnly...))
	mux.HandleFunc("GET /v1/packages/{id}/refund", s.allow(s.fromModel(s.quoteRefund), managerOnly...))
	mux.HandleFunc("POST /v1/packages/{id}/refund", s.allow(s.refund, managerOnly...))
	mux.HandleFunc("POST /v1/packages/{id}/breakage", s.allow(s.breakage, managerOnly...))
	mux.HandleFunc("GET /v1/packages/{id}/history", s.allow(s.history, historyRoles...))

	mux.HandleFunc("GET /v1/accounts/{customer}", s.allow(s.fromModel(s.account), anyRole...))
	mux.HandleFunc("GET /v1/reports/liability", s.allow(s.fromModel(s.liabilityReport), historyRoles...))
	mux.HandleFunc("GET /v1/reports/daily-close", s.allow(s.fromModel(s.dailyClose), closeRoles...))

	mux.HandleFunc("GET /v1/audit/verify", s.allow(s.verifyLedger, auditorOnly...))
	mux.HandleFunc("GET /v1/audit/balances", s.allow(s.balancesAsOf, auditorOnly...))

	s.deskRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, domain.Errorf(domain.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// fromModel marks a read answered from the read models with how old they
// may be: Age (whole seconds, as HTTP caches use it) and Ledger-As-Of, the
// last instant they were known to hold the whole log. A healthy ledger's
// reads are at most a second old; while NATS cannot be reached they keep
// answering and the age grows, so a till can tell a stale balance.
func (s *Server) fromModel(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if at := s.reads.AsOf(); !at.IsZero() {
			age := max(time.Since(at), 0)
			w.Header().Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
			w.Header().Set("Ledger-As-Of", at.UTC().Format(time.RFC3339Nano))
		}
		h(w, r)
	}
}

// maxKeyLen bounds an Idempotency-Key; a UUID is 36.
const maxKeyLen = 200

// checkKey checks an idempotency key: the API's Idempotency-Key header,
// the desk's hidden form field.
func checkKey(k string) error {
	if len(k) > maxKeyLen {
		return domain.FieldErrorf(domain.CodeInvalidField, "Idempotency-Key", "at most %d characters", maxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return domain.FieldErrorf(domain.CodeInvalidField, "Idempotency-Key", "printable ASCII only, no spaces")
		}
	}
	return nil
}

// opOf is the write an API request asks for: its user, its
// Idempotency-Key and the digest decode took of its body.
func opOf(r *http.Request) op {
	info := infoOf(r.Context())
	return op{user: info.user, key: r.Header.Get("Idempotency-Key"), digest: info.digest}
}

// replayOf checks that a replayed key belongs to this kind of request.
func replayOf(res eventstore.Result, want string) error {
	if res.Replayed && res.Appended[0].Type != want {
		return domain.Errorf(domain.CodeIdempotencyConflict, "this Idempotency-Key was already used for a %s", res.Appended[0].Type)
	}
	return nil
}

// ready waits until the projections have caught up at start.
func (s *Server) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteWait)
	defer cancel()
	if err := s.reads.WaitReady(ctx); err != nil {
		return unavailableErr("the server is still reading the ledger; try again in a moment", err)
	}
	return nil
}

func unavailableErr(msg string, err error) error {
	return &wrapped{domain.Errorf(domain.CodeUnavailable, "%s", msg), err}
}

// wrapped is a domain error with its cause kept for the log.
type wrapped struct {
	de    *domain.Error
	cause error
}

func (w *wrapped) Error() string   { return w.de.Error() + ": " + w.cause.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.de, w.cause} }

// parseID reads an id of a path in the one form the API writes ids:
// uuid.Parse also takes upper case, braces, "urn:uuid:" and no dashes, and
// two spellings of one path would make an honest retry's digest differ.
func parseID(s string, code, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s {
		return uuid.Nil, domain.Errorf(code, "no %s %q", what, truncateText(s, 60))
	}
	return id, nil
}

// truncateText shortens s to at most n bytes for a message, never
// splitting a character.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func newID() uuid.UUID {
	// NewV7 fails only if the system's random source does.
	return uuid.Must(uuid.NewV7())
}
