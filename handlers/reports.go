package handlers

import (
	"fmt"
	"net/http"
	"net/url"
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
	if err := s.ready(r.Context()); err != nil {
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
	rq, err := parseReportQuery(r.URL.Query(), s.now(), s.cfg.TZ)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.ready(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	var rep projections.Report
	s.reads.Read(func(m *projections.Model) { rep = m.Liability().Report(rq.from, rq.to, rq.byDay) })
	writeJSON(w, http.StatusOK, rep)
}

// reportQuery is what a liability report's query asks for.
type reportQuery struct {
	from, to time.Time
	byDay    bool
}

// parseReportQuery reads from, to and by; from and to default to this
// month so far, in the dealer's time zone tz.
func parseReportQuery(q url.Values, now time.Time, tz *time.Location) (reportQuery, error) {
	y, m, d := now.In(tz).Date()
	rq := reportQuery{
		from: time.Date(y, m, 1, 0, 0, 0, 0, tz), // this month so far
		to:   time.Date(y, m, d+1, 0, 0, 0, 0, tz),
	}
	var err error
	if v := q.Get("from"); v != "" {
		if rq.from, err = parseBound("from", v, false, tz); err != nil {
			return rq, err
		}
	}
	if v := q.Get("to"); v != "" {
		if rq.to, err = parseBound("to", v, true, tz); err != nil {
			return rq, err
		}
	}
	if !rq.from.Before(rq.to) {
		return rq, domain.FieldErrorf(domain.CodeInvalidField, "to", "must be after from")
	}
	switch q.Get("by") {
	case "":
	case "day":
		rq.byDay = true
		if rq.to.Sub(rq.from) > maxReportDays*24*time.Hour {
			return rq, domain.FieldErrorf(domain.CodeInvalidField, "by", "at most %d days by day", maxReportDays)
		}
	default:
		return rq, domain.FieldErrorf(domain.CodeInvalidField, "by", "only \"day\" is supported")
	}
	return rq, nil
}

// Instants a query may name: from the year 2000 as written, so that no
// time zone of the time then had an offset of seconds, which RFC 3339
// cannot write (Shanghai's was +08:05:43 until 1901); before the start of
// 9999 UTC, so that every one can be written in any offset.
var lastInstant = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

const firstYear = 2000

func checkInstant(field string, t time.Time) (time.Time, error) {
	if t.Year() < firstYear || t.After(lastInstant) {
		return time.Time{}, domain.FieldErrorf(domain.CodeInvalidField, field, "must lie between %d and %s", firstYear, lastInstant.Format(time.RFC3339))
	}
	return t, nil
}

// parseBound reads a report bound: an RFC 3339 instant, or a business day
// YYYY-MM-DD meaning its start (from) or its end (to, so that to=that day
// includes it).
func parseBound(field, v string, end bool, tz *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return checkInstant(field, t)
	}
	d, err := time.ParseInLocation("2006-01-02", v, tz)
	if err != nil {
		return time.Time{}, domain.FieldErrorf(domain.CodeInvalidField, field, "%q is neither an RFC 3339 instant nor a date YYYY-MM-DD", truncateText(v, 40))
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return checkInstant(field, d)
}

func (s *Server) dailyClose(w http.ResponseWriter, r *http.Request) {
	date, store, err := parseCloseQuery(r.URL.Query(), userOf(r.Context()), s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.ready(r.Context()); err != nil {
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

// parseCloseQuery reads the business day (default: the day of now, in its
// zone) and the store of a daily close ("": every store). A cashier closes
// their own store's day.
func parseCloseQuery(q url.Values, u User, now time.Time) (date, store string, err error) {
	date = q.Get("date")
	if date == "" {
		date = now.Format("2006-01-02")
	} else if err := domain.CheckDate("date", date); err != nil {
		return "", "", err
	}
	store = q.Get("store")
	if store != "" {
		if err := domain.CheckID("store", store); err != nil {
			return "", "", err
		}
	}
	if u.Role == domain.RoleCashier {
		if store == "" {
			store = u.Store
		}
		if store != u.Store {
			return "", "", domain.Errorf(domain.CodeForbidden, "a cashier reads only the close of their own store (%s)", u.Store)
		}
	}
	return date, store, nil
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
