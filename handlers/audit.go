package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
	"github.com/packledger/packledger/projections/audit"
)

// Scanner reads the whole log with chain checks: the auditor's view.
type Scanner interface {
	Scan(ctx context.Context, fn func(seq uint64, subject string, env domain.Envelope, err error) error) (uint64, error)
}

// verifyLedger recomputes the ledger from the log and compares it with the
// live projections.
func (s *Server) verifyLedger(w http.ResponseWriter, r *http.Request) {
	rep, err := s.verifyReport(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// verifyReport is the integrity check: every chain and signature, a full
// recomputation, and its comparison with the live projections.
func (s *Server) verifyReport(ctx context.Context) (audit.Report, error) {
	if err := s.ready(ctx); err != nil {
		return audit.Report{}, err
	}
	v := audit.New(s.cfg.Dealer, s.cfg.TZ)
	head, err := s.scanner.Scan(ctx, func(seq uint64, subject string, env domain.Envelope, err error) error {
		v.Add(seq, subject, env, err)
		return nil
	})
	if err != nil {
		return audit.Report{}, unavailableErr("the ledger could not be read", err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteWait)
	defer cancel()
	if err := s.reads.WaitFor(wctx, head); err != nil {
		return audit.Report{}, unavailableErr("the read models are behind the log", err)
	}
	rep := v.Finish()
	s.reads.Read(func(m *projections.Model) { rep = v.Compare(m, head, rep) })
	return rep, nil
}

// balancesAsOf recomputes every package from the events recorded at or
// before as_of.
func (s *Server) balancesAsOf(w http.ResponseWriter, r *http.Request) {
	t, err := parseAsOf(r.URL.Query().Get("as_of"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := s.balancesAt(r.Context(), t)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// balancesAt is every package and the totals as of instant t, recomputed
// from the log.
func (s *Server) balancesAt(ctx context.Context, t time.Time) (audit.Balances, error) {
	ver := audit.New(s.cfg.Dealer, s.cfg.TZ).AsOf(t)
	if _, err := s.scanner.Scan(ctx, func(seq uint64, subject string, env domain.Envelope, err error) error {
		ver.Add(seq, subject, env, err)
		return nil
	}); err != nil {
		return audit.Balances{}, unavailableErr("the ledger could not be read", err)
	}
	b, _ := ver.Balances()
	return b, nil
}

// parseAsOf reads the instant of an as-of query.
func parseAsOf(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, domain.FieldErrorf(domain.CodeInvalidField, "as_of", "is required: an RFC 3339 instant")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, domain.FieldErrorf(domain.CodeInvalidField, "as_of", "%q is not an RFC 3339 instant", truncateText(v, 40))
	}
	return checkInstant("as_of", t)
}
