package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	customer := r.PathValue("customer")
	if err := domain.CheckID("customer_id", customer); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.ready(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var (
		a  projections.Account
		ok bool
	)
	s.reads.Read(func(m *projections.Model) { a, ok = m.Account(customer) })
	if !ok {
		s.writeError(w, r, domain.Errorf(domain.CodeNotFound, "customer %s has no package", customer))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"customer_id": a.CustomerID, "liability": a.Liability, "packages": viewPackages(a.Packages),
	})
}

// maxReportDays bounds a roll-forward by day: ten years of days.
const maxReportDays = 3660

func (s *Server) liabilityReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.now()
	y, m, d := now.Date()
	from := time.Date(y, m, 1, 0, 0, 0, 0, s.cfg.TZ) // this month so far
	to := time.Date(y, m, d+1, 0, 0, 0, 0, s.cfg.TZ)
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = s.parseBound("from", v, false); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = s.parseBound("to", v, true); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if !from.Before(to) {
		s.writeError(w, r, domain.FieldErrorf(domain.CodeInvalidField, "to", "must be after from"))
		return
	}
	byDay := false
	switch q.Get("by") {
	case "":
	case "day":
		byDay = true
		if to.Sub(from) > maxReportDays*24*time.Hour {
			s.writeError(w, r, domain.FieldErrorf(domain.CodeInvalidField, "by", "at most %d days by day", maxReportDays))
			return
		}
	default:
		s.writeError(w, r, domain.FieldErrorf(domain.CodeInvalidField, "by", "only \"day\" is supported"))
		return
	}
	if err := s.ready(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var rep projections.Report
	s.reads.Read(func(m *projections.Model) { rep = m.Liability().Report(from, to, byDay) })
	writeJSON(w, http.StatusOK, rep)
}

// parseBound reads a report bound: an RFC 3339 instant, or a business day
// YYYY-MM-DD meaning its start (from) or its end (to, so that to=that day
// includes it).
func (s *Server) parseBound(field, v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation("2006-01-02", v, s.cfg.TZ)
	if err != nil {
		return time.Time{}, domain.FieldErrorf(domain.CodeInvalidField, field, "%q is neither an RFC 3339 instant nor a date YYYY-MM-DD", truncateText(v, 40))
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

func (s *Server) dailyClose(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u := userOf(r.Context())
	date := q.Get("date")
	if date == "" {
		date = s.now().Format("2006-01-02")
	} else if err := domain.CheckDate("date", date); err != nil {
		s.writeError(w, r, err)
		return
	}
	store := q.Get("store")
	if u.Role == domain.RoleCashier {
		// A cashier closes their own store's day.
		if store == "" {
			store = u.Store
		}
		if store != u.Store {
			s.writeError(w, r, domain.Errorf(domain.CodeForbidden, "a cashier reads only the close of their own store (%s)", u.Store))
			return
		}
	}
	if err := s.ready(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var rep projections.CloseReport
	s.reads.Read(func(m *projections.Model) { rep = m.DailyClose().Report(date, store) })
	writeJSON(w, http.StatusOK, struct {
		projections.CloseReport
		KeyFingerprint string `json:"key_fingerprint"`
	}{rep, s.cfg.KeyFingerprint})
}

type healthBody struct {
	Status      string             `json:"status"`
	Dealer      string             `json:"dealer"`
	NATS        bool               `json:"nats_connected"`
	Projections projections.Status `json:"projections"`
	// Problems says in words what "degraded" means right now.
	Problems []string  `json:"problems"`
	Time     time.Time `json:"time"`
}

// staleAfter is the age past which read models that the runner dates
// every second are called stale.
const staleAfter = 3 * time.Second

// health answers 200 while the server can answer at all, and says what is
// degraded: NATS unreachable, projections behind, events not applied.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.reads.Status()
	if st.Findings == nil {
		st.Findings = []projections.Finding{}
	}
	b := healthBody{Status: "ok", Dealer: s.cfg.Dealer, Projections: st, Problems: []string{}, Time: s.clock().UTC()}
	if s.cfg.NATSConnected != nil {
		b.NATS = s.cfg.NATSConnected()
	}
	asOf := "before the server started answering"
	if st.AsOf != nil {
		asOf = "as of " + st.AsOf.Format(time.RFC3339)
	}
	if !b.NATS {
		b.Problems = append(b.Problems, "NATS cannot be reached: writes are refused (503 ledger_unreachable) until it is back; reads answer from the read models "+asOf)
	} else if st.AgeSeconds != nil && *st.AgeSeconds > staleAfter.Seconds() {
		// Connected, but the stream does not answer (a cluster electing a
		// leader, or without a quorum): writes wait and fail the same way.
		b.Problems = append(b.Problems, fmt.Sprintf("the ledger's stream has not answered for %.0f s: writes may be refused; reads answer from the read models %s", *st.AgeSeconds, asOf))
	}
	if !st.Ready {
		b.Problems = append(b.Problems, "the read models are still reading the log")
	}
	if st.Error != "" {
		b.Problems = append(b.Problems, "following the log failed, retrying: "+st.Error)
	}
	if len(st.Findings) > 0 {
		b.Problems = append(b.Problems, fmt.Sprintf("%d events on the ledger's subjects are not the ledger's own and were not applied (see projections.findings)", len(st.Findings)))
	}
	if len(b.Problems) > 0 {
		b.Status = "degraded"
	}
	writeJSON(w, http.StatusOK, b)
}
