package handlers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections/audit"
)

// The auditor's pages (the manager reads the timeline too): a package's
// timeline with who did what, where, and the balance after each event;
// the integrity check; the balances as of a chosen instant; and the same
// answers as the API's JSON, to download.

// timelineData is a package's timeline.
type timelineData struct {
	ID     string
	Events []historyEntry
}

func (s *Server) timelinePage(d *deskReq) {
	id, err := parseID(d.r.PathValue("id"), domain.CodePackageNotFound, "package")
	var entries []historyEntry
	if err == nil {
		entries, err = s.historyOf(d.r.Context(), id)
	}
	if err != nil {
		s.failed(d, err)
		return
	}
	v := s.view(d.lang, d, "timeline.title")
	v.Data = timelineData{ID: id.String(), Events: entries}
	s.render(d.w, http.StatusOK, "timeline", v)
}

// Summary says what an event did, in a line.
func (v view) Summary(e domain.Event) string {
	switch e := e.(type) {
	case domain.PackageSold:
		return fmt.Sprintf("%s · %s · %s · %s", e.Plan.Name, e.Customer.Name, e.Vehicle.Plate, yuan(e.Price))
	case domain.PaymentRecorded:
		return fmt.Sprintf("%s · %s · %s", yuan(e.Amount), v.Method(e.Method), e.Receipt)
	case domain.PaymentVoided:
		return e.Reason
	case domain.PackageActivated:
		return v.T("pkg.expires") + " " + day(e.ExpiresAt, v.tz)
	case domain.VisitRedeemed:
		return fmt.Sprintf("%s · %s · %s · %d km", v.Service(e.Service), yuan(e.Value), e.RepairOrder, e.Mileage)
	case domain.RedemptionReversed:
		return e.Reason
	case domain.PackageRefunded:
		return fmt.Sprintf("%s %s · %s %s · %s", v.T("refund.amount"), yuan(e.Amount), v.T("refund.fee"), yuan(e.Fee), e.Reason)
	case domain.BreakageRecognized:
		return yuan(e.Amount)
	case domain.BreakageReversed:
		return yuan(e.Amount)
	}
	return ""
}

// Event names an event type.
func (v view) Event(typ string) string {
	if _, ok := words["event."+typ]; ok {
		return v.T("event." + typ)
	}
	return typ
}

// Short is the start of a hash, enough to tell two apart on a page.
func (v view) Short(h string) string { return h[:min(len(h), 12)] }

func (s *Server) auditPage(d *deskReq) {
	v := s.view(d.lang, d, "audit.title")
	v.Form = d.r.URL.Query()
	v.Data = struct{ Now string }{s.now().Format("2006-01-02T15:04")}
	s.render(d.w, http.StatusOK, "audit", v)
}

func (s *Server) verifyPage(d *deskReq) {
	rep, err := s.verifyReport(d.r.Context())
	if err != nil {
		s.failed(d, err)
		return
	}
	v := s.view(d.lang, d, "verify.title")
	v.Data = rep
	s.render(d.w, http.StatusOK, "verify", v)
}

// maxBalanceRows bounds the packages a balances page lists; the download
// has them all.
const maxBalanceRows = 200

// balancesData is the ledger as of an instant.
type balancesData struct {
	audit.Balances
	AsOf     string
	Total    int
	Download string
}

func (s *Server) balancesPage(d *deskReq) {
	asOf := strings.TrimSpace(d.r.URL.Query().Get("as_of"))
	t, err := time.ParseInLocation("2006-01-02T15:04", asOf, s.cfg.TZ)
	if err != nil {
		err = domain.FieldErrorf(domain.CodeInvalidField, "as_of", "%q is not a day and time", truncateText(asOf, 40))
	} else {
		t, err = checkInstant("as_of", t)
	}
	var b audit.Balances
	if err == nil {
		b, err = s.balancesAt(d.r.Context(), t)
	}
	if err != nil {
		s.failed(d, err)
		return
	}
	v := s.view(d.lang, d, "balances.title")
	data := balancesData{Balances: b, AsOf: asOf, Total: len(b.Packages),
		Download: "/desk/export/balances.json?as_of=" + t.UTC().Format(time.RFC3339)}
	data.Packages = b.Packages[:min(len(b.Packages), maxBalanceRows)]
	v.Data = data
	s.render(d.w, http.StatusOK, "balances", v)
}

// export serves one of the API's JSON answers to a signed-in auditor, as
// a file: the same handler, the session's user in place of a token. An
// answer that is not 200 is no file: the desk says what went wrong.
func (s *Server) export(name string, h http.HandlerFunc) func(*deskReq) {
	return func(d *deskReq) {
		rec := &recorded{header: http.Header{}, code: http.StatusOK}
		h(rec, d.r.WithContext(withUser(d.r.Context(), d.user)))
		if rec.code != http.StatusOK {
			var body errorBody
			_ = json.Unmarshal(rec.Bytes(), &body)
			s.failed(d, domain.Errorf(cmp.Or(body.Error.Code, domain.CodeInternal), "%s", body.Error.Message))
			return
		}
		for k, v := range rec.header {
			d.w.Header()[k] = v
		}
		d.w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		d.w.WriteHeader(http.StatusOK)
		_, _ = d.w.Write(rec.Bytes())
	}
}

// recorded is an answer kept whole before any of it is sent.
type recorded struct {
	header http.Header
	code   int
	bytes.Buffer
}

func (r *recorded) Header() http.Header  { return r.header }
func (r *recorded) WriteHeader(code int) { r.code = code }
