package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
)

// The outcomes of a request.
const (
	crashAcked   = "acknowledged"
	crashRefused = "refused"
	crashUnknown = "unknown"
)

// crashEntry is one request of the journal: what was sent, what it had to
// get, and what it got. Only its client touches it until the load is over.
type crashEntry struct {
	n      int
	client *crashClient
	kind   string // plan, sale, payment, redemption
	pkg    *crashPkg
	key    string
	path   string
	body   []byte // sent byte for byte the same at every attempt

	wantStatus int
	wantCode   string      // a refusal's error code
	repeatOf   *crashEntry // the same request under a new key: 200 with that one's ids
	activates  bool        // a payment of the rest of the price
	amount     string      // payments
	receipt    string
	service    string // redemptions
	repairOrd  string

	outcome     string
	status      int
	code        string
	id          string // the plan code, package, payment or redemption id answered
	gotAmount   string
	gotReceipt  string
	gotService  string
	gotRepair   string
	gotUnit     int
	gotValue    string
	pkgSeq      uint64 // the answer's package seq: its last event
	pkgStatus   string
	attempts    int
	failures    []string // the first few failed attempts
	firstEpoch  int
	answerEpoch int
}

func (e *crashEntry) String() string {
	s := fmt.Sprintf("#%d %s by %s key %s %s %s: want %d %s", e.n, e.kind, e.client.id, e.key, e.path, e.body, e.wantStatus, e.wantCode)
	if e.repeatOf != nil {
		s += fmt.Sprintf(" (repeat of #%d, id %s)", e.repeatOf.n, e.repeatOf.id)
	}
	s += fmt.Sprintf("; got %s %d %s id %s after %d attempts (lives %d..%d)", e.outcome, e.status, e.code, e.id, e.attempts, e.firstEpoch, e.answerEpoch)
	if len(e.failures) > 0 {
		s += "; failures: " + strings.Join(e.failures, "; ")
	}
	return s
}

// wrote tells whether the request must have appended to the ledger.
func (e *crashEntry) wrote() bool { return e.outcome == crashAcked && e.repeatOf == nil }

func (e *crashEntry) asExpected() bool {
	switch {
	case e.outcome != crashAcked && e.outcome != crashRefused:
		return false
	case e.status != e.wantStatus:
		return false
	case e.wantCode != "":
		return e.code == e.wantCode
	case e.repeatOf != nil:
		return e.id == e.repeatOf.id
	}
	return e.id != ""
}

// crashPkg is one package of the load.
type crashPkg struct {
	idx      int
	id       string // once sold
	advisor  *crashAdvisor
	paidUp   bool // the cashier paid the whole price
	diverged bool // an answer was not the expected one: no more requests on it
}

// crashLoad is what the clients share.
type crashLoad struct {
	ctx        context.Context
	hc         *http.Client
	cur        atomic.Pointer[crashEpoch] // where the server answers now
	killerDone atomic.Bool
	started    atomic.Int32 // packages begun
	lostLive   atomic.Int32 // answers seen to come from a write of an earlier life
	vins       []string
	payQ       chan *crashPkg

	mu       sync.Mutex
	entries  []*crashEntry
	problems []string
}

func (l *crashLoad) client(id, token string, seed uint64) *crashClient {
	return &crashClient{load: l, id: id, token: token, rng: mrand.New(mrand.NewPCG(seed, uint64(len(id))))}
}

// nextPackage hands out the next package index while packages are to be
// sold: while the killer works, and until the minimum.
func (l *crashLoad) nextPackage() (int, bool) {
	for {
		n := l.started.Load()
		if n >= crashMaxPackages || (l.killerDone.Load() && n >= crashMinPackages) || l.ctx.Err() != nil {
			return 0, false
		}
		if l.started.CompareAndSwap(n, n+1) {
			return int(n), true
		}
	}
}

func (l *crashLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// crashClient is one user at a desk.
type crashClient struct {
	load  *crashLoad
	id    string
	token string
	rng   *mrand.Rand
}

func (c *crashClient) newEntry(kind string, p *crashPkg, path string, body map[string]any) *crashEntry {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // the test's own maps
	}
	l := c.load
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &crashEntry{n: len(l.entries), client: c, kind: kind, pkg: p, path: path, body: b}
	e.key = fmt.Sprintf("%s-%05d", kind, e.n)
	l.entries = append(l.entries, e)
	return e
}

// do paces the desk, sends e and tells whether it got what it had to.
func (c *crashClient) do(e *crashEntry) bool {
	d := time.Duration(20+c.rng.IntN(40)) * time.Millisecond // a person at a desk, not a benchmark
	select {
	case <-time.After(d):
	case <-c.load.ctx.Done():
	}
	c.send(c.load.ctx, e)
	return e.asExpected()
}

// send sends e until it gets a definite answer: a transport failure or a
// 503 is retried, with the same key and body, at the server's current
// address, with backoff, within crashMaxAttempts and ctx.
func (c *crashClient) send(ctx context.Context, e *crashEntry) {
	l := c.load
	backoff := 10 * time.Millisecond
	for {
		ep := l.cur.Load()
		if e.attempts == 0 {
			e.firstEpoch = ep.n
		}
		e.attempts++
		status, body, err := c.attempt(ctx, ep.url, e)
		var failure string
		switch {
		case err != nil:
			failure = err.Error()
		case status == http.StatusServiceUnavailable:
			failure = "503 " + strings.TrimSpace(string(body))
		case status == http.StatusUnauthorized && l.cur.Load() != ep:
			// A dead life's port, since taken by some other program.
			failure = "401 from a dead life's address"
		default:
			e.record(status, body, ep)
			if e.wrote() && e.firstEpoch < ep.n && e.pkgSeq > 0 && e.pkgSeq <= ep.head {
				l.lostLive.Add(1)
			}
			return
		}
		if len(e.failures) < 4 {
			e.failures = append(e.failures, fmt.Sprintf("attempt %d to life %d: %s", e.attempts, ep.n, failure))
		}
		if e.attempts >= crashMaxAttempts || ctx.Err() != nil {
			e.outcome = crashUnknown
			return
		}
		select {
		case <-time.After(backoff + time.Duration(c.rng.Int64N(int64(backoff)))):
		case <-ctx.Done():
			e.outcome = crashUnknown
			return
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func (c *crashClient) attempt(ctx context.Context, url string, e *crashEntry) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, crashAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+e.path, bytes.NewReader(e.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Idempotency-Key", e.key)
	resp, err := c.load.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err) // cut off: no answer
	}
	return resp.StatusCode, b, nil
}

// record keeps a definite answer.
func (e *crashEntry) record(status int, body []byte, ep *crashEpoch) {
	e.status, e.answerEpoch = status, ep.n
	bad := func(err error) {
		e.client.load.problem("#%d %s: answer %d is not what §5 says (%v): %s", e.n, e.kind, status, err, body)
	}
	if status < 200 || status > 299 {
		e.outcome = crashRefused
		var r struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Error.Code == "" {
			bad(err)
		}
		e.code = r.Error.Code
		return
	}
	e.outcome = crashAcked
	var pkg crashPackageView
	var err error
	switch e.kind {
	case "plan":
		var r struct {
			Code string `json:"code"`
		}
		err = json.Unmarshal(body, &r)
		e.id = r.Code
	case "sale":
		err = json.Unmarshal(body, &pkg)
		e.id = pkg.ID
	case "payment":
		var r struct {
			Payment crashPaymentView `json:"payment"`
			Package crashPackageView `json:"package"`
		}
		err = json.Unmarshal(body, &r)
		e.id, e.gotAmount, e.gotReceipt, pkg = r.Payment.ID, r.Payment.Amount, r.Payment.Receipt, r.Package
	case "redemption":
		var r struct {
			Redemption crashRedemptionView `json:"redemption"`
			Package    crashPackageView    `json:"package"`
		}
		err = json.Unmarshal(body, &r)
		red := r.Redemption
		e.id, e.gotService, e.gotRepair, e.gotUnit, e.gotValue, pkg = red.ID, red.Service, red.RepairOrder, red.Unit, red.Value, r.Package
	}
	if err != nil {
		bad(err)
	}
	e.pkgSeq, e.pkgStatus = pkg.Seq, pkg.Status
}

// crashAdvisor sells packages and, once a cashier has handed one back,
// deducts its visits.
type crashAdvisor struct {
	*crashClient
	ready      chan *crashPkg
	sold, done int
}

func (a *crashAdvisor) run(sellers *sync.WaitGroup) {
	selling := true
	stopSelling := func() {
		if selling {
			selling = false
			sellers.Done()
		}
	}
	defer stopSelling()
	for {
		select {
		case p := <-a.ready:
			a.redeem(p)
			a.done++
			continue
		default:
		}
		if selling {
			if i, ok := a.load.nextPackage(); ok {
				if p := a.sell(i); p != nil {
					a.sold++
					a.load.payQ <- p
				}
				continue
			}
			stopSelling()
		}
		if a.done == a.sold {
			return
		}
		select {
		case p := <-a.ready:
			a.redeem(p)
			a.done++
		case <-a.load.ctx.Done():
			return
		}
	}
}

func (a *crashAdvisor) sell(i int) *crashPkg {
	p := &crashPkg{idx: i, advisor: a}
	e := a.newEntry("sale", p, "/v1/packages", map[string]any{
		"plan":     crashPlan,
		"customer": map[string]any{"id": fmt.Sprintf("CR-%04d", i), "name": fmt.Sprintf("Customer %d", i), "phone": fmt.Sprintf("139%08d", i)},
		"vehicle":  map[string]any{"vin": a.load.vins[i], "plate": fmt.Sprintf("沪K%05d", i), "model": "Lavida", "registered": "2023-06-01"},
	})
	e.wantStatus = http.StatusCreated
	if !a.do(e) {
		return nil
	}
	p.id = e.id
	return p
}

func (a *crashAdvisor) redemption(p *crashPkg, service, ro string, mileage int) *crashEntry {
	e := a.newEntry("redemption", p, "/v1/packages/"+p.id+"/redemptions",
		map[string]any{"service": service, "repair_order": ro, "mileage": mileage})
	e.service, e.repairOrd = service, ro
	return e
}

// redeem deducts some of a package's visits, one repair order each, with
// now and then a repeat of a repair order, a service the plan does not
// have, or a visit past the last one.
func (a *crashAdvisor) redeem(p *crashPkg) {
	if p.diverged {
		return
	}
	if !p.paidUp {
		e := a.redemption(p, "oil_change", fmt.Sprintf("RO-%04d-U", p.idx), 1000)
		e.wantStatus, e.wantCode = http.StatusConflict, "package_not_active"
		a.do(e)
		return
	}
	var pool []string
	for _, s := range []string{"oil_change", "inspection"} {
		for range crashCounts[s] {
			pool = append(pool, s)
		}
	}
	a.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	script := pool[:a.rng.IntN(len(pool)+1)]
	exhaust := a.rng.IntN(4) == 0 // every inspection, then one more
	if exhaust {
		script = []string{"inspection", "inspection"}
		for range a.rng.IntN(crashCounts["oil_change"] + 1) {
			script = append(script, "oil_change")
		}
		a.rng.Shuffle(len(script), func(i, j int) { script[i], script[j] = script[j], script[i] })
	}
	unknownAt := -1
	if a.rng.IntN(5) == 0 {
		unknownAt = a.rng.IntN(len(script) + 1)
	}
	mileage := 5000 + a.rng.IntN(20000)
	for i := 0; i <= len(script); i++ {
		if i == unknownAt {
			e := a.redemption(p, "brake_service", fmt.Sprintf("RO-%04d-B", p.idx), mileage)
			e.wantStatus, e.wantCode = http.StatusUnprocessableEntity, "unknown_service"
			if !a.do(e) {
				p.diverged = true
				return
			}
		}
		if i == len(script) {
			break
		}
		mileage += 5000
		e := a.redemption(p, script[i], fmt.Sprintf("RO-%04d-%d", p.idx, i), mileage)
		e.wantStatus = http.StatusCreated
		if !a.do(e) {
			p.diverged = true
			return
		}
		if a.rng.IntN(5) == 0 {
			// The same repair order again, as a new request: its first
			// deduction, no second.
			r := a.redemption(p, e.service, e.repairOrd, mileage)
			r.wantStatus, r.repeatOf = http.StatusOK, e
			if !a.do(r) {
				p.diverged = true
				return
			}
		}
	}
	if exhaust {
		e := a.redemption(p, "inspection", fmt.Sprintf("RO-%04d-N", p.idx), mileage+5000)
		e.wantStatus, e.wantCode = http.StatusConflict, "no_visits_left"
		a.do(e)
	}
}

// crashCashier takes the payments of packages sold, in one to three parts,
// with now and then an overpayment, a receipt number of another package,
// or a receipt shown twice; some packages are left partly paid.
type crashCashier struct {
	*crashClient
	receipts []crashReceipt // this cashier's acknowledged receipts
}

type crashReceipt struct {
	number string
	pkg    int
}

func (c *crashCashier) run() {
	for p := range c.load.payQ {
		c.pay(p)
		p.advisor.ready <- p
	}
}

var crashMethods = []string{"cash", "card", "wechat", "alipay", "bank_transfer"}

func (c *crashCashier) payment(p *crashPkg, cents int64, receipt string) *crashEntry {
	amount := crashMoney(cents)
	e := c.newEntry("payment", p, "/v1/packages/"+p.id+"/payments",
		map[string]any{"amount": amount, "method": crashMethods[c.rng.IntN(len(crashMethods))], "receipt": receipt})
	e.amount, e.receipt = amount, receipt
	return e
}

func (c *crashCashier) pay(p *crashPkg) {
	parts := crashSplit(c.rng, crashPriceCents, 1+c.rng.IntN(3))
	leaveUnpaid := c.rng.IntN(8) == 0
	due := int64(crashPriceCents)
	for i, part := range parts {
		last := i == len(parts)-1
		if last && leaveUnpaid {
			return
		}
		if last && c.rng.IntN(3) == 0 {
			e := c.payment(p, due+1, fmt.Sprintf("R-%04d-%d-X", p.idx, i))
			e.wantStatus, e.wantCode = http.StatusUnprocessableEntity, "overpayment"
			if !c.do(e) {
				p.diverged = true
				return
			}
		}
		if other := c.otherReceipt(p); other != "" && c.rng.IntN(5) == 0 {
			e := c.payment(p, part, other)
			e.wantStatus, e.wantCode = http.StatusConflict, "duplicate_receipt"
			if !c.do(e) {
				p.diverged = true
				return
			}
		}
		receipt := fmt.Sprintf("R-%04d-%d", p.idx, i)
		e := c.payment(p, part, receipt)
		e.wantStatus, e.activates = http.StatusCreated, last
		if !c.do(e) {
			p.diverged = true
			return
		}
		c.receipts = append(c.receipts, crashReceipt{receipt, p.idx})
		due -= part
		if c.rng.IntN(5) == 0 {
			// The customer's receipt shown again, as a new request: the
			// first payment, no second.
			r := c.payment(p, part, receipt)
			r.wantStatus, r.repeatOf = http.StatusOK, e
			if !c.do(r) {
				p.diverged = true
				return
			}
		}
	}
	p.paidUp = true
}

// otherReceipt is one of this cashier's receipts of another package.
func (c *crashCashier) otherReceipt(p *crashPkg) string {
	var others []string
	for _, r := range c.receipts {
		if r.pkg != p.idx {
			others = append(others, r.number)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return others[c.rng.IntN(len(others))]
}

// crashSplit cuts total cents into n positive parts.
func crashSplit(rng *mrand.Rand, total int64, n int) []int64 {
	cuts := map[int64]bool{}
	for int64(len(cuts)) < int64(n-1) {
		cuts[1+rng.Int64N(total-1)] = true
	}
	points := []int64{0, total}
	for c := range cuts {
		points = append(points, c)
	}
	sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
	var parts []int64
	for i := 1; i < len(points); i++ {
		parts = append(parts, points[i]-points[i-1])
	}
	return parts
}

func crashMoney(cents int64) string { return decimal.New(cents, -2).StringFixed(2) }
