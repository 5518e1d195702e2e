package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The API's answers, as far as the checks read them.
type crashPackageView struct {
	ID          string                `json:"id"`
	Status      string                `json:"status"`
	Price       string                `json:"price"`
	Paid        string                `json:"paid"`
	Voided      string                `json:"voided"`
	Recognized  string                `json:"recognized"`
	Refunded    string                `json:"refunded"`
	Breakage    string                `json:"breakage"`
	Liability   string                `json:"liability"`
	Remaining   map[string]int        `json:"remaining"`
	Units       []crashUnitView       `json:"units"`
	Payments    []crashPaymentView    `json:"payments"`
	Redemptions []crashRedemptionView `json:"redemptions"`
	Seq         uint64                `json:"seq"`
}

type crashUnitView struct {
	Index        int     `json:"index"`
	Service      string  `json:"service"`
	Value        string  `json:"value"`
	RedemptionID *string `json:"redemption_id"`
}

type crashPaymentView struct {
	ID      string `json:"id"`
	Amount  string `json:"amount"`
	Method  string `json:"method"`
	Receipt string `json:"receipt"`
	Voided  bool   `json:"voided"`
}

type crashRedemptionView struct {
	ID          string `json:"id"`
	Unit        int    `json:"unit"`
	Service     string `json:"service"`
	Value       string `json:"value"`
	RepairOrder string `json:"repair_order"`
	Reversed    bool   `json:"reversed"`
}

// crashRecord is one message of the stream, read with a plain NATS client.
type crashRecord struct {
	seq       uint64
	subject   string
	typ       string
	actor     string
	key       string
	aggregate string
	data      map[string]any
}

func (r crashRecord) String() string {
	return fmt.Sprintf("seq %d %s on %s by %s key %q", r.seq, r.typ, r.subject, r.actor, r.key)
}

// readCrashStream reads every message of the stream, in order.
func readCrashStream(t *testing.T, url string) []crashRecord {
	t.Helper()
	w := watchStream(t, url)
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	last := info.State.LastSeq
	require.Equal(t, uint64(1), info.State.FirstSeq)
	require.Equal(t, last, info.State.Msgs, "a stream that denies delete has no gaps")
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []crashRecord
	for fetches := 0; uint64(len(out)) < last; fetches++ {
		require.Less(t, fetches, 1000, "reading %d records", last)
		// No more than are left, or the last fetch waits out its time.
		batch, err := c.Fetch(int(min(500, last-uint64(len(out)))), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			require.NoError(t, err)
			var env struct {
				Type  string `json:"type"`
				Actor struct {
					ID string `json:"id"`
				} `json:"actor"`
				Key       string         `json:"idempotency_key"`
				Aggregate string         `json:"aggregate"`
				Data      map[string]any `json:"data"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &env), "seq %d: %s", meta.Sequence.Stream, m.Data())
			require.Equal(t, uint64(len(out)+1), meta.Sequence.Stream, "in order")
			out = append(out, crashRecord{seq: meta.Sequence.Stream, subject: m.Subject(), typ: env.Type,
				actor: env.Actor.ID, key: env.Key, aggregate: env.Aggregate, data: env.Data})
		}
		require.NoError(t, batch.Error())
	}
	return out
}

// crashFigures is what checkCrashLedger found.
type crashFigures struct {
	records  int // on the stream
	packages int
	lost     int            // acknowledged writes whose answer came from a later life than the write
	lostKind map[string]int // lost by kind of request
	resent   int            // acknowledged writes done by a later life than the one first asked
}

// checkCrashLedger holds the ledger to the journal: the stream record by
// record, each package, the package list and the live verify.
func checkCrashLedger(t *testing.T, srv *proc, load *crashLoad, users crashUserSet, epochs []*crashEpoch) crashFigures {
	t.Helper()
	fig := crashFigures{lostKind: map[string]int{}}
	recs := readCrashStream(t, srv.NATS)
	fig.records = len(recs)

	// Every record is the write of one acknowledged request (or the demo
	// plans of the first start), and each such request wrote exactly what
	// its kind writes, once.
	byKey := map[string]*crashEntry{}
	for _, e := range load.entries {
		byKey[e.client.id+" "+e.key] = e
	}
	written := map[*crashEntry][]crashRecord{}
	demoPlans := 0
	for _, r := range recs {
		if r.actor == "demo-manager" && r.typ == "PlanDefined" && strings.HasPrefix(r.subject, "ledger.demo.plans.") && r.seq <= epochs[0].head {
			demoPlans++
			continue
		}
		e := byKey[r.actor+" "+r.key]
		switch {
		case e == nil:
			t.Errorf("%s: no request of the journal wrote it", r)
		case !e.wrote():
			t.Errorf("%s: written by a request that must leave no trace: %s", r, e)
		default:
			written[e] = append(written[e], r)
		}
	}
	require.Equal(t, 3, demoPlans, "the demo plans")
	epochOf := func(seq uint64) int {
		n := 0
		for _, ep := range epochs {
			if ep.head < seq {
				n = ep.n
			}
		}
		return n
	}
	for _, e := range load.entries {
		if !e.wrote() {
			continue
		}
		got := written[e]
		var shape, want []string
		for _, r := range got {
			shape = append(shape, r.typ+" on "+r.subject)
		}
		pkgSubject := ""
		if e.pkg != nil {
			pkgSubject = "ledger.demo.packages." + e.pkg.id
		}
		switch e.kind {
		case "plan":
			want = []string{"PlanDefined on ledger.demo.plans." + crashPlan}
		case "sale":
			want = []string{"PackageSold on " + pkgSubject}
		case "payment":
			want = []string{"ReceiptClaimed on ledger.demo.receipts." + e.receipt, "PaymentRecorded on " + pkgSubject}
			if e.activates {
				want = append(want, "PackageActivated on "+pkgSubject)
			}
		case "redemption":
			want = []string{"VisitRedeemed on " + pkgSubject}
		}
		if !assertEqualf(t, want, shape, "the records of %s", e) {
			continue
		}
		// The answer, however many attempts it took, names the ids and the
		// sequence of the one write.
		last := got[len(got)-1]
		switch e.kind {
		case "sale":
			assertDatum(t, last, "package_id", e.id)
		case "payment":
			assertDatum(t, got[0], "payment_id", e.id)
			assertDatum(t, got[0], "package_id", e.pkg.id)
			assertDatum(t, got[0], "amount", e.amount)
			assertDatum(t, got[1], "payment_id", e.id)
			assertDatum(t, got[1], "amount", e.amount)
			assertDatum(t, got[1], "receipt", e.receipt)
			assertEqualf(t, e.amount, e.gotAmount, "%s: amount answered", e)
			assertEqualf(t, e.receipt, e.gotReceipt, "%s: receipt answered", e)
			wantStatus := "awaiting_payment"
			if e.activates {
				wantStatus = "active"
			}
			assertEqualf(t, wantStatus, e.pkgStatus, "%s: the package status answered", e)
		case "redemption":
			assertDatum(t, last, "redemption_id", e.id)
			assertDatum(t, last, "repair_order", e.repairOrd)
			assertDatum(t, last, "service", e.service)
			assertDatum(t, last, "value", e.gotValue)
			assertEqualf(t, e.service, e.gotService, "%s: service answered", e)
			assertEqualf(t, e.repairOrd, e.gotRepair, "%s: repair order answered", e)
		}
		if e.kind != "plan" {
			assertEqualf(t, last.seq, e.pkgSeq, "%s: the answer's package seq is its write's", e)
		}
		w := epochOf(got[0].seq)
		if w < e.firstEpoch || w > e.answerEpoch {
			t.Errorf("%s: written by life %d, outside the lives it was sent to", e, w)
		}
		if w < e.answerEpoch {
			fig.lost++
			fig.lostKind[e.kind]++
		} else if w > e.firstEpoch {
			fig.resent++
		}
	}

	// Each package, as the API shows it, against the journal.
	var sales []*crashEntry
	for _, e := range load.entries {
		if e.kind == "sale" && e.wrote() {
			sales = append(sales, e)
		}
	}
	fig.packages = len(sales)
	manager, auditor := users.tokens["crash-manager"], users.tokens["crash-auditor"]
	allReceipts, allOrders := map[string]string{}, map[string]string{}
	var totalPaid, totalLiability, totalRecognized decimal.Decimal
	for _, sale := range sales {
		p := sale.pkg
		var v crashPackageView
		getJSON(t, srv, "/v1/packages/"+p.id, manager, &v)
		checkCrashPackage(t, load, p, v)
		for _, pay := range v.Payments {
			allReceipts[pay.Receipt] = p.id
		}
		for _, red := range v.Redemptions {
			allOrders[red.RepairOrder] = p.id
		}
		totalPaid = totalPaid.Add(crashAmount(t, v.Paid))
		totalLiability = totalLiability.Add(crashAmount(t, v.Liability))
		totalRecognized = totalRecognized.Add(crashAmount(t, v.Recognized))

		// The history the manager reads is the package's subject on the
		// stream, record for record.
		var h struct {
			Events []struct {
				Seq   uint64 `json:"seq"`
				Type  string `json:"type"`
				Actor struct {
					ID string `json:"id"`
				} `json:"actor"`
				Key string `json:"idempotency_key"`
			} `json:"events"`
		}
		getJSON(t, srv, "/v1/packages/"+p.id+"/history", manager, &h)
		var fromAPI, fromStream []string
		for _, ev := range h.Events {
			fromAPI = append(fromAPI, fmt.Sprintf("%d %s %s %s", ev.Seq, ev.Type, ev.Actor.ID, ev.Key))
		}
		for _, r := range recs {
			if r.subject == "ledger.demo.packages."+p.id {
				fromStream = append(fromStream, fmt.Sprintf("%d %s %s %s", r.seq, r.typ, r.actor, r.key))
			}
		}
		assertEqualf(t, fromStream, fromAPI, "package %s: history", p.id)
	}

	// Nothing refused left a trace: no payment with its receipt on its
	// package (and for a fresh receipt, none anywhere, nor a claim), no
	// deduction with its repair order. (Their keys are on no record:
	// checked above.)
	claims := map[string]int{}
	for _, r := range recs {
		if r.typ == "ReceiptClaimed" {
			claims[strings.TrimPrefix(r.subject, "ledger.demo.receipts.")]++
		}
	}
	for _, e := range load.entries {
		if e.outcome != crashRefused {
			continue
		}
		switch e.kind {
		case "payment":
			if e.wantCode == "duplicate_receipt" {
				assertEqualf(t, 1, claims[e.receipt], "%s: the receipt's one claim is its first payment's", e)
				if allReceipts[e.receipt] == e.pkg.id {
					t.Errorf("%s: the refused receipt is on the package", e)
				}
			} else {
				assertEqualf(t, 0, claims[e.receipt], "%s: a claim of the refused receipt", e)
				assertEqualf(t, "", allReceipts[e.receipt], "%s: a payment with the refused receipt", e)
			}
		case "redemption":
			assertEqualf(t, "", allOrders[e.repairOrd], "%s: a deduction with the refused repair order", e)
		}
	}

	// The package list holds the packages sold, each once.
	var list struct {
		Packages []crashPackageView `json:"packages"`
		Total    int                `json:"total"`
	}
	getJSON(t, srv, "/v1/packages?limit=1000", manager, &list)
	var listed, sold []string
	for _, v := range list.Packages {
		listed = append(listed, v.ID)
	}
	for _, s := range sales {
		sold = append(sold, s.id)
	}
	sort.Strings(listed)
	sort.Strings(sold)
	assertEqualf(t, sold, listed, "every acknowledged sale is one package, and there is no other")
	assertEqualf(t, len(sales), list.Total, "packages found")

	// The auditor's live check recomputes the same ledger from the log.
	var rep struct {
		OK       bool              `json:"ok"`
		Events   int               `json:"events"`
		Packages int               `json:"packages"`
		Findings []json.RawMessage `json:"findings"`
		Totals   map[string]string `json:"totals"`
	}
	getJSON(t, srv, "/v1/audit/verify", auditor, &rep)
	assertEqualf(t, true, rep.OK, "/v1/audit/verify ok")
	assertEqualf(t, 0, len(rep.Findings), "/v1/audit/verify findings: %s", rep.Findings)
	assertEqualf(t, len(recs), rep.Events, "/v1/audit/verify applies every record")
	assertEqualf(t, len(sales), rep.Packages, "/v1/audit/verify packages")
	assertEqualf(t, totalPaid.StringFixed(2), rep.Totals["paid"], "total paid")
	assertEqualf(t, totalLiability.StringFixed(2), rep.Totals["liability"], "total liability")
	assertEqualf(t, totalRecognized.StringFixed(2), rep.Totals["recognized"], "total recognized")
	return fig
}

// checkCrashPackage holds one package to its acknowledged payments and
// deductions and to the invariant of DESIGN.md §4.
func checkCrashPackage(t *testing.T, load *crashLoad, p *crashPkg, v crashPackageView) {
	t.Helper()
	where := fmt.Sprintf("package %d (%s)", p.idx, p.id)
	var pays, reds []*crashEntry
	for _, e := range load.entries {
		if e.pkg == p && e.wrote() {
			switch e.kind {
			case "payment":
				pays = append(pays, e)
			case "redemption":
				reds = append(reds, e)
			}
		}
	}
	// Payments: the acknowledged ones, each once, as answered.
	paid := decimal.Zero
	wantPays := map[string]string{}
	for _, e := range pays {
		wantPays[e.id] = e.amount + " " + e.receipt
		paid = paid.Add(crashAmount(t, e.amount))
	}
	gotPays := map[string]string{}
	for _, pay := range v.Payments {
		if _, dup := gotPays[pay.ID]; dup {
			t.Errorf("%s: payment %s listed twice", where, pay.ID)
		}
		gotPays[pay.ID] = pay.Amount + " " + pay.Receipt
		assertEqualf(t, false, pay.Voided, "%s: payment %s voided", where, pay.ID)
	}
	assertEqualf(t, len(pays), len(v.Payments), "%s: number of payments", where)
	assertEqualf(t, wantPays, gotPays, "%s: payments by id", where)
	// Deductions: likewise, each on the unit it was answered with.
	wantReds, gotReds := map[string]string{}, map[string]string{}
	used := map[string]int{}
	for _, e := range reds {
		wantReds[e.id] = fmt.Sprintf("%s %s unit %d %s", e.service, e.repairOrd, e.gotUnit, e.gotValue)
		used[e.service]++
	}
	for _, red := range v.Redemptions {
		if _, dup := gotReds[red.ID]; dup {
			t.Errorf("%s: redemption %s listed twice", where, red.ID)
		}
		gotReds[red.ID] = fmt.Sprintf("%s %s unit %d %s", red.Service, red.RepairOrder, red.Unit, red.Value)
		assertEqualf(t, false, red.Reversed, "%s: redemption %s reversed", where, red.ID)
	}
	assertEqualf(t, len(reds), len(v.Redemptions), "%s: number of deductions", where)
	assertEqualf(t, wantReds, gotReds, "%s: deductions by id", where)
	for s, n := range crashCounts {
		assertEqualf(t, n-used[s], v.Remaining[s], "%s: remaining %s", where, s)
	}

	// The money.
	price := crashAmount(t, v.Price)
	assertEqualf(t, crashMoney(crashPriceCents), v.Price, "%s: price", where)
	assertEqualf(t, paid.StringFixed(2), v.Paid, "%s: paid is the sum of the acknowledged payments", where)
	wantStatus := "awaiting_payment"
	if paid.Equal(price) {
		wantStatus = "active"
		if len(reds) == len(v.Units) {
			wantStatus = "used_up"
		}
	}
	assertEqualf(t, wantStatus, v.Status, "%s: status", where)
	if !p.diverged {
		assertEqualf(t, p.paidUp, paid.Equal(price), "%s: paid up as the cashier meant", where)
	}
	sumUnits, unused, redeemed := decimal.Zero, decimal.Zero, decimal.Zero
	unitOf := map[string]crashUnitView{}
	for _, u := range v.Units {
		val := crashAmount(t, u.Value)
		sumUnits = sumUnits.Add(val)
		if u.RedemptionID == nil {
			unused = unused.Add(val)
		} else {
			redeemed = redeemed.Add(val)
			unitOf[*u.RedemptionID] = u
		}
	}
	assertEqualf(t, price.StringFixed(2), sumUnits.StringFixed(2), "%s: the units' values sum to the price", where)
	for _, red := range v.Redemptions {
		u, ok := unitOf[red.ID]
		if assertEqualf(t, true, ok, "%s: redemption %s holds a unit", where, red.ID) {
			assertEqualf(t, fmt.Sprintf("%d %s %s", red.Unit, red.Service, red.Value), fmt.Sprintf("%d %s %s", u.Index, u.Service, u.Value), "%s: redemption %s's unit", where, red.ID)
		}
	}
	voided, recognized, refunded := crashAmount(t, v.Voided), crashAmount(t, v.Recognized), crashAmount(t, v.Refunded)
	breakage, liability := crashAmount(t, v.Breakage), crashAmount(t, v.Liability)
	lhs := paid.Sub(voided)
	rhs := recognized.Add(refunded).Add(breakage).Add(liability)
	assertEqualf(t, lhs.StringFixed(2), rhs.StringFixed(2), "%s: paid − voided = recognized + refunded + breakage + liability (%+v)", where, v)
	assertEqualf(t, false, liability.IsNegative(), "%s: liability %s ≥ 0", where, v.Liability)
	assertEqualf(t, redeemed.StringFixed(2), v.Recognized, "%s: recognized is the redeemed units' value", where)
	if v.Status == "active" || v.Status == "used_up" {
		assertEqualf(t, unused.StringFixed(2), v.Liability, "%s: liability is the unused units' value", where)
	} else {
		assertEqualf(t, paid.StringFixed(2), v.Liability, "%s: an unpaid package owes what was paid", where)
	}
}

var crashAmountRE = regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)

// crashAmount parses money as §4 writes it.
func crashAmount(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	require.Regexp(t, crashAmountRE, s, "money is a string with two decimals")
	d, err := decimal.NewFromString(s)
	require.NoError(t, err)
	return d
}

// assertDatum checks a field of a record's data.
func assertDatum(t *testing.T, r crashRecord, field, want string) {
	t.Helper()
	assertEqualf(t, want, fmt.Sprint(r.data[field]), "%s: data.%s", r, field)
}

// getJSON GETs path with token, requires 200 and decodes the answer.
func getJSON(t *testing.T, srv *proc, path, token string, v any) {
	t.Helper()
	status, raw := srv.doRaw(http.MethodGet, path, token, nil)
	require.Equal(t, http.StatusOK, status, "GET %s: %s", path, raw)
	require.NoError(t, json.Unmarshal(raw, v), "GET %s: %s", path, raw)
}

// assertEqualf reports a difference and lets the checks go on, so that one
// run shows every loss or double at once.
func assertEqualf(t *testing.T, want, got any, format string, args ...any) bool {
	t.Helper()
	return assert.Equalf(t, want, got, format, args...)
}
