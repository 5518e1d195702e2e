// Package audit recomputes the ledger from its events for the auditor:
// every package re-applied through the domain with the §4 invariant
// checked after each event, the liability rolled forward day by day, the
// state as of any instant, and a comparison with what a live server's
// projections hold. It is fed records in stream order; telling the
// ledger's own events from foreign ones (signatures and chains) is the
// caller's part, done with eventstore.Chains.
package audit

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// Finding is one problem: which dealer and package, which stream
// sequence, what is wrong.
type Finding struct {
	Dealer  string `json:"dealer,omitempty"`
	Package string `json:"package,omitempty"`
	Subject string `json:"subject,omitempty"`
	Seq     uint64 `json:"seq"`
	Problem string `json:"problem"`
}

func (f Finding) String() string {
	where := f.Subject
	if f.Package != "" {
		where = "package " + f.Package
	}
	return fmt.Sprintf("seq %d %s: %s", f.Seq, where, f.Problem)
}

// Report is the verdict.
type Report struct {
	OK       bool            `json:"ok"`
	Events   int             `json:"events"`
	Packages int             `json:"packages"`
	Totals   domain.Balances `json:"totals"`
	Findings []Finding       `json:"findings"`
}

// Verifier folds events and collects findings.
type Verifier struct {
	dealer   string
	tz       *time.Location
	asOf     *time.Time
	model    *projections.Model
	first    time.Time
	last     time.Time
	events   int
	findings []Finding
}

// New returns a verifier with business days in tz.
func New(dealer string, tz *time.Location) *Verifier {
	return &Verifier{dealer: dealer, tz: tz, model: projections.NewModel(tz)}
}

// AsOf makes the verifier apply only events recorded at or before t: the
// ledger as it stood at that instant.
func (v *Verifier) AsOf(t time.Time) *Verifier {
	v.asOf = &t
	return v
}

// Add takes the next record in stream order. err is why the record is not
// one of the ledger's own events (undecodable, unsigned, off its chain):
// it becomes a finding and is not applied.
func (v *Verifier) Add(seq uint64, subject string, env domain.Envelope, err error) {
	if err != nil {
		v.find(seq, subject, err.Error())
		return
	}
	if v.asOf != nil && env.RecordedAt.After(*v.asOf) {
		return
	}
	v.events++
	if v.first.IsZero() || env.BusinessTime.Before(v.first) {
		v.first = env.BusinessTime
	}
	if env.BusinessTime.After(v.last) {
		v.last = env.BusinessTime
	}
	v.model.Apply(env)
	if id, perr := uuid.Parse(env.Aggregate); perr == nil && strings.Contains(subject, ".packages.") {
		p, _ := v.model.Package(id)
		if ierr := domain.CheckInvariant(p); ierr != nil {
			v.find(seq, subject, "invariant broken after "+env.Type+": "+ierr.Error())
		}
	}
}

// Note adds a finding found outside the log, such as a difference from a
// live server's answers.
func (v *Verifier) Note(seq uint64, subject, problem string) { v.find(seq, subject, problem) }

// Findings is the findings so far.
func (v *Verifier) Findings() []Finding { return v.findings }

func (v *Verifier) find(seq uint64, subject, problem string) {
	f := Finding{Dealer: v.dealer, Seq: seq, Subject: subject, Problem: problem}
	if _, id, ok := strings.Cut(subject, ".packages."); ok {
		f.Package = id
	}
	v.findings = append(v.findings, f)
}

// Model is the recomputed read models.
func (v *Verifier) Model() *projections.Model { return v.model }

// Finish checks what can only be checked over the whole history: the
// roll-forward of every business day (opening + movements = closing, each
// closing the next opening) and that the last closing equals the sum of
// the packages' liability. It returns the report.
func (v *Verifier) Finish() Report {
	totals := v.model.Totals()
	if err := totals.Check(); err != nil {
		v.find(0, "", "totals: "+err.Error())
	}
	if v.events > 0 {
		y, m, d := v.first.In(v.tz).Date()
		from := time.Date(y, m, d, 0, 0, 0, 0, v.tz)
		y, m, d = v.last.In(v.tz).Date()
		to := time.Date(y, m, d+1, 0, 0, 0, 0, v.tz)
		rep := v.model.Liability().Report(from, to, true)
		prev := rep.Opening
		for _, day := range rep.Days {
			if !day.Opening.Equal(prev) {
				v.find(0, "", fmt.Sprintf("roll-forward %s: opening %s is not the previous closing %s", day.From.Format("2006-01-02"), day.Opening, prev))
			}
			if got := day.Opening.Add(day.Net()); !got.Equal(day.Closing) {
				v.find(0, "", fmt.Sprintf("roll-forward %s: opening + movements = %s, closing %s", day.From.Format("2006-01-02"), got, day.Closing))
			}
			prev = day.Closing
		}
		if !rep.Closing.Equal(totals.Liability) {
			v.find(0, "", fmt.Sprintf("roll-forward closes at %s but the packages owe %s", rep.Closing, totals.Liability))
		}
	}
	_, _, n := v.model.Stats()
	r := Report{OK: len(v.findings) == 0, Events: v.events, Packages: n, Totals: totals, Findings: v.findings}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r
}

// Compare checks a live server's projections against the recomputation of
// the log up to stream sequence upTo, package by package and in total, and
// adds a finding for each difference. Packages the live server changed
// after upTo are passed over, and totals are compared only if it has
// applied nothing after upTo. It returns the report with the findings.
func (v *Verifier) Compare(live *projections.Model, upTo uint64, r Report) Report {
	mine := v.model.Find(projections.Query{})
	theirs := live.Find(projections.Query{})
	ids := map[uuid.UUID]bool{}
	for _, p := range mine {
		ids[p.ID] = true
		lp, ok := live.Package(p.ID)
		switch {
		case ok && lp.Seq > upTo:
			// Changed since the log was read: not comparable now.
		case !ok:
			v.find(p.Seq, "", fmt.Sprintf("package %s is in the log but not in the live projections", p.ID))
		case lp.Seq != p.Seq || lp.Status != p.Status || !lp.Balances().Equal(p.Balances()):
			v.find(p.Seq, "", fmt.Sprintf("package %s: live projection (seq %d, %s, liability %s) differs from the log (seq %d, %s, liability %s)",
				p.ID, lp.Seq, lp.Status, lp.Liability, p.Seq, p.Status, p.Liability))
		}
	}
	for _, p := range theirs {
		if !ids[p.ID] && p.Seq <= upTo {
			v.find(p.Seq, "", fmt.Sprintf("package %s is in the live projections but not in the log", p.ID))
		}
	}
	if _, liveSeq, _ := live.Stats(); liveSeq <= upTo && !live.Totals().Equal(r.Totals) {
		lt := live.Totals()
		v.find(0, "", fmt.Sprintf("live totals (liability %s) differ from the log's (liability %s)", lt.Liability, r.Totals.Liability))
	}
	sort.SliceStable(v.findings, func(i, j int) bool { return v.findings[i].Seq < v.findings[j].Seq })
	r.Findings, r.OK = v.findings, len(v.findings) == 0
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r
}

// Balances is every package and the totals as of an instant, as
// GET /v1/audit/balances and packledger replay show them.
type Balances struct {
	AsOf     time.Time                 `json:"as_of"`
	Packages []projections.PackageView `json:"packages"`
	Totals   domain.Balances           `json:"totals"`
	Events   int                       `json:"events"`
	// Findings warn that the log holds foreign or unreadable events (never
	// applied) or broke a check: the balances are the ledger's own events'.
	Findings []Finding `json:"findings"`
}

// Balances finishes the verifier and returns the ledger as of its AsOf
// instant (or as of now, if none was set), with the report.
func (v *Verifier) Balances() (Balances, Report) {
	r := v.Finish()
	b := Balances{Packages: projections.ViewPackages(v.model.Find(projections.Query{})), Totals: r.Totals, Events: r.Events,
		Findings: r.Findings}
	if v.asOf != nil {
		b.AsOf = *v.asOf
	}
	return b, r
}
