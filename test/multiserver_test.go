package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// mustCall is call on the test's goroutine, requiring a status.
func (p *proc) mustCall(want int, token, method, path string, body any, headers ...string) map[string]any {
	p.t.Helper()
	a := p.call(token, method, path, body, headers...)
	require.NoError(p.t, a.Err)
	require.Equal(p.t, want, a.Status, "%s %s%s: %v\nstderr:\n%s", method, p.HTTP, path, a, p.stderr)
	return a.Body
}

// race is one request of a race: who sends what to which server, and
// what came back, with the package as an immediate GET on the same server
// showed it after a write was answered.
type race struct {
	kind  string // "last", "receipt", "same-ro", "key"
	group int    // what is raced for: a package, a receipt round, a repair order or a key
	srv   int
	user  fileUser
	pkg   string
	path  string
	body  map[string]any
	key   string

	ans     answer
	retries []string // what each retried answer was
	after   answer   // GET /v1/packages/{pkg} on srv right after a 2xx
}

// send runs the request, retrying as a client is told to (409
// concurrent_update, 503 unavailable) with the same Idempotency-Key, a
// bounded number of times; after a 2xx it reads the package back at once
// from the same server.
func (r *race) send(servers []*proc) {
	p := servers[r.srv]
	for try := 1; ; try++ {
		r.ans = p.call(r.user.Token, http.MethodPost, r.path, r.body, "Idempotency-Key", r.key)
		retry := r.ans.Err == nil && (r.ans.Status == http.StatusServiceUnavailable ||
			(r.ans.Status == http.StatusConflict && r.ans.code() == "concurrent_update"))
		if !retry || try == 5 {
			break
		}
		r.retries = append(r.retries, fmt.Sprintf("%d %s", r.ans.Status, r.ans.code()))
		time.Sleep(time.Duration(try*20) * time.Millisecond)
	}
	if r.ans.Err == nil && r.ans.Status/100 == 2 {
		pkg := r.pkg
		if pkg == "" { // a sale: the answer is the package
			pkg = strAt(r.ans.Body, "id")
		}
		r.after = p.call(r.user.Token, http.MethodGet, "/v1/packages/"+pkg, nil)
	}
}

func (r *race) String() string {
	return fmt.Sprintf("%s #%d by %s on server %d, %s %v", r.kind, r.group, r.user.ID, r.srv, r.path, r.body)
}

// objAt and strAt read a decoded JSON value without a *testing.T.
func objAt(m map[string]any, key string) map[string]any { o, _ := m[key].(map[string]any); return o }
func strAt(m map[string]any, key string) string         { s, _ := m[key].(string); return s }
func listAt(m map[string]any, key string) []map[string]any {
	l, _ := m[key].([]any)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		o, _ := e.(map[string]any)
		out = append(out, o)
	}
	return out
}

// idsOf lists the "id" of each entry of a package's list (payments,
// redemptions), sorted.
func idsOf(pkg map[string]any, list string) []string {
	var ids []string
	for _, e := range listAt(pkg, list) {
		ids = append(ids, strAt(e, "id"))
	}
	sort.Strings(ids)
	return ids
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func money(t *testing.T, m map[string]any, key string) decimal.Decimal {
	t.Helper()
	d, err := decimal.NewFromString(str(t, m, key))
	require.NoError(t, err, "%q of %v", key, m)
	return d
}

// requireShowsRedemption requires that a package (a write's answer or a
// read) holds the redemption on a unit.
func requireShowsRedemption(t *testing.T, where string, pkg map[string]any, rid string) {
	t.Helper()
	require.Contains(t, idsOf(pkg, "redemptions"), rid, "%s: the package lists the redemption", where)
	onUnit := 0
	for _, u := range listAt(pkg, "units") {
		if s, _ := u["redemption_id"].(string); s == rid {
			onUnit++
		}
	}
	require.Equal(t, 1, onUnit, "%s: exactly one unit carries redemption %s", where, rid)
}

// requireReadBack requires that the GET right after a write, on the server
// that took it, answered 200 with the package at least as new as the
// write's answer.
func requireReadBack(t *testing.T, r *race, answered map[string]any) map[string]any {
	t.Helper()
	require.NoError(t, r.after.Err, "%s: read back", r)
	require.Equal(t, http.StatusOK, r.after.Status, "%s: read back: %v", r, r.after)
	require.GreaterOrEqual(t, num(t, r.after.Body, "seq"), num(t, answered, "seq"),
		"%s: the GET right after the write, on the same server, is older than the write's answer", r)
	return r.after.Body
}

// TestMultiServer_OneLedger runs three `serve` processes on one external
// JetStream (--nats, one key file, one users file, so a user is the same
// user on all of them). Clients spread over them race, all at once, for
// the same packages' last visits, the same receipt numbers and the same
// repair orders, and one client sends one request with one Idempotency-Key
// to all three. Each package's last visits go to exactly as many advisors
// as there are visits, a receipt number pays once in the whole ledger, a
// repair order deducts once, a repeated key is carried out once; every
// answer to a write shows it, and so does an immediate read on the server
// that took it. Afterwards the three servers converge on the same
// packages, accounts, liability report and applied sequence, the log
// itself holds exactly the events it must, and each server's audit finds
// nothing.
func TestMultiServer_OneLedger(t *testing.T) {
	requestsSent.Store(0)
	ns := runPlainJetStream(t)
	natsURL := ns.ClientURL()
	keyFile := filepath.Join(t.TempDir(), "ledger.key")
	out, err := exec.Command(binPath, "key", "--init", "--key-file", keyFile).CombinedOutput()
	require.NoError(t, err, "%s", out)

	var advisors, cashiers []fileUser
	for i := 1; i <= 6; i++ {
		advisors = append(advisors, newFileUser(t, fmt.Sprintf("ms-advisor-%d", i), "advisor"))
	}
	for i := 1; i <= 4; i++ {
		cashiers = append(cashiers, newFileUser(t, fmt.Sprintf("ms-cashier-%d", i), "cashier"))
	}
	manager := newFileUser(t, "ms-manager", "manager")
	auditor := newFileUser(t, "ms-auditor", "auditor")
	usersPath := filepath.Join(t.TempDir(), "users.json")
	writeUsersFile(t, usersPath, append(append(append([]fileUser{}, advisors...), cashiers...), manager, auditor)...)

	flags := []string{"--nats", natsURL, "--key-file", keyFile, "--users", usersPath}
	var servers []*proc
	for i := 0; i < 3; i++ {
		s := startServer(t, t.TempDir(), flags...)
		s.waitCaughtUp()
		require.Equal(t, natsURL, s.NATS, "server %d uses the given NATS", i)
		servers = append(servers, s)
	}
	// One user, one identity: every server knows every file user.
	for i, s := range servers {
		s.mustCall(http.StatusOK, auditor.Token, http.MethodGet, "/v1/audit/verify", nil)
		s.mustCall(http.StatusOK, manager.Token, http.MethodGet, "/v1/reports/liability", nil)
		require.Len(t, arr(t, s.mustCall(http.StatusOK, cashiers[0].Token, http.MethodGet, "/v1/plans", nil), "plans"), 3,
			"server %d shows the three demo plans the first one defined", i)
	}

	// Packages of OIL4: 4 oil changes, 1632.00, 408.00 a visit. Sold,
	// paid and partly used through the servers in turn, each step read back
	// at once from the server that took it.
	const customerLast, customerRO, customerReceipt, customerKey, customerSale = "C-MS-LAST", "C-MS-RO", "C-MS-RCPT", "C-MS-KEY", "C-MS-SALE"
	sold := 0
	sell := func(customer string) string {
		t.Helper()
		s := servers[sold%3]
		sold++
		pkg := s.mustCall(http.StatusCreated, advisors[sold%len(advisors)].Token, http.MethodPost, "/v1/packages", map[string]any{
			"plan":     "OIL4",
			"customer": map[string]any{"id": customer, "name": "Customer " + customer, "phone": "13600136000"},
			"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", fmt.Sprintf("M%07d", sold)), "plate": fmt.Sprintf("沪M%05d", sold), "model": "Passat"},
		}, "Idempotency-Key", fmt.Sprintf("ms-sale-%d", sold))
		id := str(t, pkg, "id")
		got := s.mustCall(http.StatusOK, manager.Token, http.MethodGet, "/v1/packages/"+id, nil)
		require.GreaterOrEqual(t, num(t, got, "seq"), num(t, pkg, "seq"), "a sale reads back on its server")
		return id
	}
	step := 0
	payFull := func(id string) {
		t.Helper()
		step++
		s := servers[step%3]
		ans := s.mustCall(http.StatusCreated, cashiers[step%len(cashiers)].Token, http.MethodPost, "/v1/packages/"+id+"/payments",
			map[string]any{"amount": "1632.00", "method": "wechat", "receipt": fmt.Sprintf("MS-FULL-%d", step)},
			"Idempotency-Key", fmt.Sprintf("ms-full-%d", step))
		require.Equal(t, "active", str(t, obj(t, ans, "package"), "status"))
		got := s.mustCall(http.StatusOK, manager.Token, http.MethodGet, "/v1/packages/"+id, nil)
		require.Equal(t, "active", str(t, got, "status"), "a payment reads back on its server")
	}
	preRedeemed := map[string][]string{} // package → redemption ids before the race
	redeem := func(id string) {
		t.Helper()
		step++
		s := servers[step%3]
		ans := s.mustCall(http.StatusCreated, advisors[step%len(advisors)].Token, http.MethodPost, "/v1/packages/"+id+"/redemptions",
			map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-MS-PRE-%d", step), "mileage": 1000 * step},
			"Idempotency-Key", fmt.Sprintf("ms-pre-%d", step))
		rid := str(t, obj(t, ans, "redemption"), "id")
		preRedeemed[id] = append(preRedeemed[id], rid)
		requireShowsRedemption(t, "pre-race answer", obj(t, ans, "package"), rid)
		requireShowsRedemption(t, "pre-race read back", s.mustCall(http.StatusOK, manager.Token, http.MethodGet, "/v1/packages/"+id, nil), rid)
	}

	// Race 1's packages: 1 or 2 visits left each.
	var lastPkgs []string
	lastLeft := map[string]int{}
	for i := 0; i < 6; i++ {
		id := sell(customerLast)
		payFull(id)
		left := 1 + i%2
		for j := 0; j < 4-left; j++ {
			redeem(id)
		}
		lastPkgs, lastLeft[id] = append(lastPkgs, id), left
	}
	// Race 2's packages: awaiting payment, 1632.00 due; the race pays at
	// most 4 × 150.00 into each, so no attempt can be an overpayment.
	var rcptPkgs []string
	for i := 0; i < 3; i++ {
		rcptPkgs = append(rcptPkgs, sell(customerReceipt))
	}
	// Race 3's packages: 4 visits left.
	var roPkgs []string
	for i := 0; i < 3; i++ {
		id := sell(customerRO)
		payFull(id)
		roPkgs = append(roPkgs, id)
	}
	// Race 4's packages, for a payment: awaiting it.
	var keyPkgs []string
	for i := 0; i < 2; i++ {
		keyPkgs = append(keyPkgs, sell(customerKey))
	}
	allPkgs := append(append(append(append([]string{}, lastPkgs...), rcptPkgs...), roPkgs...), keyPkgs...)
	setupRequests := requestsSent.Load()

	// The races, all released at once.
	var races []*race
	const lastContenders = 12
	for g, id := range lastPkgs {
		for i := 0; i < lastContenders; i++ {
			ro := fmt.Sprintf("RO-MS-L%d-%02d", g, i)
			races = append(races, &race{kind: "last", group: g, srv: (i + g) % 3, user: advisors[i%len(advisors)], pkg: id,
				path: "/v1/packages/" + id + "/redemptions",
				body: map[string]any{"service": "oil_change", "repair_order": ro, "mileage": 20000 + i},
				key:  "ms-last-" + ro})
		}
	}
	type payTarget struct {
		pkg    string
		amount string
	}
	const receiptRounds = 4
	for round := 0; round < receiptRounds; round++ {
		a, b, c := rcptPkgs[round%3], rcptPkgs[(round+1)%3], rcptPkgs[(round+2)%3]
		targets := []payTarget{{a, "100.00"}, {a, "100.00"}, {a, "100.00"}, {a, "150.00"}, {a, "150.00"},
			{b, "100.00"}, {b, "100.00"}, {c, "100.00"}, {c, "150.00"}}
		for j, tg := range targets {
			races = append(races, &race{kind: "receipt", group: round, srv: (j + round) % 3, user: cashiers[j%len(cashiers)], pkg: tg.pkg,
				path: "/v1/packages/" + tg.pkg + "/payments",
				body: map[string]any{"amount": tg.amount, "method": "card", "receipt": fmt.Sprintf("MS-RACE-%d", round)},
				key:  fmt.Sprintf("ms-rcpt-%d-%d", round, j)})
		}
	}
	// Per package two repair orders: one sent twice each to two servers,
	// one sent once to each of the three.
	for g, id := range roPkgs {
		for j, srv := range []int{g % 3, (g + 1) % 3, g % 3, (g + 1) % 3, 0, 1, 2} {
			ro := fmt.Sprintf("RO-MS-SAME-%d-%d", g, min(j/4, 1))
			races = append(races, &race{kind: "same-ro", group: 2*g + min(j/4, 1), srv: srv, user: advisors[(g+j)%len(advisors)], pkg: id,
				path: "/v1/packages/" + id + "/redemptions",
				body: map[string]any{"service": "oil_change", "repair_order": ro, "mileage": 30000 + j},
				key:  fmt.Sprintf("ms-same-%d-%d", g, j)})
		}
	}

	// A client that sends one request to every server at once (as one
	// failing over would): the same user, Idempotency-Key and body.
	for g, id := range roPkgs {
		for srv := 0; srv < 3; srv++ {
			races = append(races, &race{kind: "key", group: g, srv: srv, user: advisors[(g+3)%len(advisors)], pkg: id,
				path: "/v1/packages/" + id + "/redemptions",
				body: map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-MS-KEY-%d", g), "mileage": 40000},
				key:  fmt.Sprintf("ms-key-red-%d", g)})
		}
	}
	saleGroup := len(roPkgs) + len(keyPkgs)
	for srv := 0; srv < 3; srv++ {
		races = append(races, &race{kind: "key", group: saleGroup, srv: srv, user: advisors[5], path: "/v1/packages",
			body: map[string]any{
				"plan":     "OIL4",
				"customer": map[string]any{"id": customerSale, "name": "Customer " + customerSale, "phone": "13600136000"},
				"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", "S0000001"), "plate": "沪S00001", "model": "Passat"},
			},
			key: "ms-key-sale"})
	}
	for g, id := range keyPkgs {
		for srv := 0; srv < 3; srv++ {
			races = append(races, &race{kind: "key", group: len(roPkgs) + g, srv: srv, user: cashiers[g%len(cashiers)], pkg: id,
				path: "/v1/packages/" + id + "/payments",
				body: map[string]any{"amount": "1632.00", "method": "cash", "receipt": fmt.Sprintf("MS-KEY-%d", g)},
				key:  fmt.Sprintf("ms-key-pay-%d", g)})
		}
	}

	// The servers' JetStream answers are visible to any client of this
	// unauthenticated NATS on their reply inboxes: count the refusals
	// (wrong last sequence: a conflict a server then decides again).
	nc, err := nats.Connect(natsURL, nats.Name("ms-observer"), nats.Timeout(10*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	var refusedMu sync.Mutex
	refused := map[string]int{}
	inbox, err := nc.Subscribe("_INBOX.>", func(m *nats.Msg) {
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(m.Data, &ack) == nil && ack.Error != nil {
			refusedMu.Lock()
			why, _, _ := strings.Cut(ack.Error.Description, ":") // "wrong last sequence: 61"
			refused[why]++
			refusedMu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range races {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r.send(servers)
		}()
	}
	raceStart := time.Now()
	close(start)
	wg.Wait()
	raceTook := time.Since(raceStart)
	require.NoError(t, nc.Flush())
	for i := 0; i < 100; i++ {
		if n, _, err := inbox.Pending(); err != nil || n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, inbox.Unsubscribe())
	refusedMu.Lock()
	conflicts := fmt.Sprint(refused)
	refusedMu.Unlock()
	raceRequests := requestsSent.Load() - setupRequests
	// The sale sent to every server makes one package: its id, from the
	// answers, for the convergence to read.
	var salePkg string
	for _, r := range races {
		if r.kind == "key" && r.group == saleGroup {
			require.NoError(t, r.ans.Err, "%s", r)
			require.Equal(t, http.StatusCreated, r.ans.Status, "%s: a repeat of an Idempotency-Key answers as the first: %v", r, r.ans)
			if salePkg == "" {
				salePkg = str(t, r.ans.Body, "id")
			}
			require.Equal(t, salePkg, str(t, r.ans.Body, "id"), "%s: one sale sent to every server is one package", r)
		}
	}
	allPkgs = append(allPkgs, salePkg)

	// Convergence, polled right away: the three servers answer the same,
	// at the stream's last sequence. The answers are judged below.
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "LEDGER")
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	lastSeq := info.State.LastSeq

	customers := []string{customerLast, customerReceipt, customerRO, customerKey, customerSale}
	convergeStart := time.Now()
	// First the cheap figure: when every /healthz names the stream's last
	// sequence as applied.
	var appliedTook time.Duration
	for n := 0; n < 1000 && time.Since(convergeStart) < readyTimeout; n++ {
		at := 0
		for _, s := range servers {
			if a := s.call("", http.MethodGet, "/healthz", nil); a.Err == nil &&
				fmt.Sprint(objAt(a.Body, "projections")["applied_seq"]) == fmt.Sprint(lastSeq) {
				at++
			}
		}
		if at == len(servers) {
			appliedTook = time.Since(convergeStart)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var views []map[string]any
	var differ string
	deadline := time.Now().Add(readyTimeout)
	polls := 0
	for ; polls < 300 && time.Now().Before(deadline); polls++ {
		views, differ = nil, ""
		for i, s := range servers {
			v, err := s.ledgerView(manager.Token, allPkgs, customers)
			if err != nil {
				differ = fmt.Sprintf("server %d: %v", i, err)
				break
			}
			if h := objAt(v, "healthz"); fmt.Sprint(h["applied_seq"]) != fmt.Sprint(lastSeq) {
				differ = fmt.Sprintf("server %d at applied_seq %v, the stream at %d", i, h["applied_seq"], lastSeq)
				break
			}
			views = append(views, v)
		}
		if differ == "" {
			for i := 1; i < len(views) && differ == ""; i++ {
				if !reflect.DeepEqual(views[0], views[i]) {
					differ = "server " + fmt.Sprint(i) + " differs from server 0: " + firstDifference(views[0], views[i])
				}
			}
		}
		if differ == "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Empty(t, differ, "the servers did not converge within %s (%d polls)", readyTimeout, polls)
	convergeTook := time.Since(convergeStart)
	info, err = stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, lastSeq, info.State.LastSeq, "nothing was written while the servers converged")

	for _, r := range races {
		require.NoError(t, r.ans.Err, "%s", r)
	}
	retried := map[string]int{}
	for _, r := range races {
		for _, why := range r.retries {
			retried[why]++
		}
	}

	// Race 1: exactly as many winners as visits left, the others told
	// no_visits_left; each winner's answer and read-back show its
	// redemption.
	winners := map[string][]*race{} // package → its race winners
	for _, r := range races {
		if r.kind != "last" {
			continue
		}
		switch {
		case r.ans.Status == http.StatusCreated:
			winners[r.pkg] = append(winners[r.pkg], r)
			red := obj(t, r.ans.Body, "redemption")
			rid := str(t, red, "id")
			require.Equal(t, r.user.ID, str(t, red, "advisor"), "%s: the redemption names its advisor", r)
			require.Equal(t, r.body["repair_order"], str(t, red, "repair_order"), "%s", r)
			requireShowsRedemption(t, r.String()+": the write's answer", obj(t, r.ans.Body, "package"), rid)
			requireShowsRedemption(t, r.String()+": the read right after it on the same server",
				requireReadBack(t, r, obj(t, r.ans.Body, "package")), rid)
		default:
			require.Equal(t, http.StatusConflict, r.ans.Status, "%s: a loser: %v", r, r.ans)
			require.Equal(t, "no_visits_left", r.ans.code(), "%s: a loser: %v", r, r.ans)
		}
	}
	for _, id := range lastPkgs {
		require.Len(t, winners[id], lastLeft[id], "package %s with %d visits left: the advisors who got 201", id, lastLeft[id])
	}

	// Race 2: per receipt number one 201 in the whole ledger; the same
	// package and amount again gets 200 with that payment, anything else
	// duplicate_receipt.
	receiptWinner := map[int]*race{}
	for _, r := range races {
		if r.kind == "receipt" && r.ans.Status == http.StatusCreated {
			require.Nil(t, receiptWinner[r.group], "receipt round %d: a second 201: %s, after %s", r.group, r, receiptWinner[r.group])
			receiptWinner[r.group] = r
		}
	}
	for round := 0; round < receiptRounds; round++ {
		w := receiptWinner[round]
		require.NotNil(t, w, "receipt round %d: no payment was recorded", round)
		pay := obj(t, w.ans.Body, "payment")
		require.Equal(t, w.user.ID, str(t, pay, "cashier"), "%s", w)
		require.Equal(t, w.body["amount"], str(t, pay, "amount"), "%s", w)
		require.Equal(t, w.body["receipt"], str(t, pay, "receipt"), "%s", w)
	}
	for _, r := range races {
		if r.kind != "receipt" || r == receiptWinner[r.group] {
			continue
		}
		w := receiptWinner[r.group]
		if r.pkg == w.pkg && r.body["amount"] == w.body["amount"] {
			require.Equal(t, http.StatusOK, r.ans.Status, "%s: the same package and amount as the winner %s: %v", r, w, r.ans)
			require.Equal(t, str(t, obj(t, w.ans.Body, "payment"), "id"), str(t, obj(t, r.ans.Body, "payment"), "id"),
				"%s: answers with the first payment", r)
		} else {
			require.Equal(t, http.StatusConflict, r.ans.Status, "%s: the winner was %s: %v", r, w, r.ans)
			require.Equal(t, "duplicate_receipt", r.ans.code(), "%s: the winner was %s: %v", r, w, r.ans)
		}
	}
	for _, r := range races {
		if r.kind != "receipt" || r.ans.Status/100 != 2 {
			continue
		}
		pid := str(t, obj(t, r.ans.Body, "payment"), "id")
		require.Contains(t, idsOf(obj(t, r.ans.Body, "package"), "payments"), pid, "%s: the write's answer shows the payment", r)
		require.Contains(t, idsOf(requireReadBack(t, r, obj(t, r.ans.Body, "package")), "payments"), pid,
			"%s: the read right after it on the same server shows the payment", r)
	}

	// Race 3: one deduction per repair order; every answer names it.
	sameRO := map[int][]*race{}
	for _, r := range races {
		if r.kind == "same-ro" {
			sameRO[r.group] = append(sameRO[r.group], r)
		}
	}
	sameRID := map[int]string{}
	for g, rs := range sameRO {
		created := 0
		for _, r := range rs {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, r.ans.Status, "%s: %v", r, r.ans)
			if r.ans.Status == http.StatusCreated {
				created++
			}
			rid := str(t, obj(t, r.ans.Body, "redemption"), "id")
			if sameRID[g] == "" {
				sameRID[g] = rid
			}
			require.Equal(t, sameRID[g], rid, "%s: every answer names the one redemption", r)
			requireShowsRedemption(t, r.String()+": the write's answer", obj(t, r.ans.Body, "package"), rid)
			requireShowsRedemption(t, r.String()+": the read right after it on the same server",
				requireReadBack(t, r, obj(t, r.ans.Body, "package")), rid)
		}
		require.Equal(t, 1, created, "repair order group %d: exactly one 201 among %d requests", g, len(rs))
	}
	// Race 4: one request sent thrice is carried out once, and each
	// server answers as the first did: 201 with the one redemption or
	// payment.
	keyID := map[int]string{}
	for _, r := range races {
		if r.kind != "key" {
			continue
		}
		require.Equal(t, http.StatusCreated, r.ans.Status, "%s: a repeat of an Idempotency-Key answers as the first: %v", r, r.ans)
		var id string
		if r.path == "/v1/packages" {
			id = str(t, r.ans.Body, "id")
			readBack := requireReadBack(t, r, r.ans.Body)
			require.Equal(t, id, str(t, readBack, "id"), "%s", r)
			require.Equal(t, "awaiting_payment", str(t, readBack, "status"), "%s", r)
			if keyID[r.group] == "" {
				keyID[r.group] = id
			}
			require.Equal(t, keyID[r.group], id, "%s: every answer names the first one", r)
			continue
		}
		answered := obj(t, r.ans.Body, "package")
		readBack := requireReadBack(t, r, answered)
		if strings.HasSuffix(r.path, "/payments") {
			id = str(t, obj(t, r.ans.Body, "payment"), "id")
			require.Equal(t, []string{id}, idsOf(answered, "payments"), "%s: the write's answer shows the one payment", r)
			require.Equal(t, []string{id}, idsOf(readBack, "payments"), "%s: the read right after it on the same server shows the one payment", r)
			require.Equal(t, "active", str(t, readBack, "status"), "%s", r)
		} else {
			id = str(t, obj(t, r.ans.Body, "redemption"), "id")
			requireShowsRedemption(t, r.String()+": the write's answer", answered, id)
			requireShowsRedemption(t, r.String()+": the read right after it on the same server", readBack, id)
		}
		if keyID[r.group] == "" {
			keyID[r.group] = id
		}
		require.Equal(t, keyID[r.group], id, "%s: every answer names the first one", r)
	}
	view := views[0]
	health := objAt(view, "healthz")
	require.Equal(t, "ok", health["status"], "healthz: %v", health)
	require.Equal(t, true, health["caught_up"], "healthz: %v", health)
	require.Empty(t, health["findings"], "healthz: no foreign events")

	// The log itself, read apart from any server: each package's subject
	// holds the events it must, each receipt number one claim.
	winsOf := map[string]int{}
	for _, w := range receiptWinner {
		winsOf[w.pkg]++
	}
	wantEvents := map[string]int{}
	for _, id := range lastPkgs {
		wantEvents[id] = 3 + 4 // sold, paid, activated; four visits
	}
	for _, id := range rcptPkgs {
		wantEvents[id] = 1 + winsOf[id] // sold; the race's payments it won
	}
	for _, id := range roPkgs {
		wantEvents[id] = 3 + 3
	}
	for _, id := range keyPkgs {
		wantEvents[id] = 3
	}
	wantEvents[salePkg] = 1
	subjInfo, err := stream.Info(ctx, jetstream.WithSubjectFilter("ledger.demo.>"))
	require.NoError(t, err)
	var total uint64
	receipts := 0
	for subj, n := range subjInfo.State.Subjects {
		total += n
		if strings.HasPrefix(subj, "ledger.demo.receipts.") {
			receipts++
			require.Equal(t, uint64(1), n, "%s: a receipt number is claimed once", subj)
		}
	}
	require.Equal(t, lastSeq, total, "every message is on a ledger subject")
	require.Equal(t, len(lastPkgs)+len(roPkgs)+receiptRounds+len(keyPkgs), receipts, "one claim per payment recorded")
	for id, want := range wantEvents {
		require.Equal(t, uint64(want), subjInfo.State.Subjects["ledger.demo.packages."+id], "package %s's events on the log", id)
	}

	// What the converged ledger holds: race 1's packages used up with
	// exactly the winners' redemptions.
	pkgView := func(id string) map[string]any { return objAt(view, "package "+id) }
	for _, id := range lastPkgs {
		p := pkgView(id)
		want := append([]string{}, preRedeemed[id]...)
		for _, w := range winners[id] {
			want = append(want, str(t, obj(t, w.ans.Body, "redemption"), "id"))
		}
		sort.Strings(want)
		require.Equal(t, want, idsOf(p, "redemptions"), "package %s: the redemptions are the pre-race ones and the winners'", id)
		units := map[int]bool{}
		for _, red := range listAt(p, "redemptions") {
			require.Equal(t, false, red["reversed"], "package %s", id)
			units[num(t, red, "unit")] = true
		}
		require.Len(t, units, 4, "package %s: four redemptions on four different units", id)
		require.Equal(t, "used_up", str(t, p, "status"), "package %s", id)
		require.Equal(t, "0.00", str(t, p, "liability"), "package %s", id)
		require.Equal(t, "1632.00", str(t, p, "recognized"), "package %s", id)
		require.Equal(t, 0, num(t, obj(t, p, "remaining"), "oil_change"), "package %s", id)
	}
	// Race 2: each race receipt once in the whole ledger, as its winner's.
	for round := 0; round < receiptRounds; round++ {
		w := receiptWinner[round]
		var found []string
		for _, id := range allPkgs {
			for _, pay := range listAt(pkgView(id), "payments") {
				if strAt(pay, "receipt") == w.body["receipt"] {
					found = append(found, id+" "+strAt(pay, "id")+" "+strAt(pay, "amount")+" "+strAt(pay, "cashier"))
				}
			}
		}
		wp := obj(t, w.ans.Body, "payment")
		require.Equal(t, []string{w.pkg + " " + str(t, wp, "id") + " " + str(t, wp, "amount") + " " + w.user.ID}, found,
			"receipt %s: once in the ledger, the winner's payment", w.body["receipt"])
	}
	for _, id := range rcptPkgs {
		require.Equal(t, "awaiting_payment", str(t, pkgView(id), "status"), "package %s", id)
	}
	// Races 3 and 4: three redemptions per package, one per repair order;
	// one payment per package of race 4.
	for g, id := range roPkgs {
		p := pkgView(id)
		require.Equal(t, sortedCopy([]string{sameRID[2*g], sameRID[2*g+1], keyID[g]}), idsOf(p, "redemptions"), "package %s: one redemption per repair order", id)
		require.Equal(t, 1, num(t, obj(t, p, "remaining"), "oil_change"), "package %s", id)
		require.Equal(t, "408.00", str(t, p, "liability"), "package %s", id)
	}
	for g, id := range keyPkgs {
		p := pkgView(id)
		require.Equal(t, []string{keyID[len(roPkgs)+g]}, idsOf(p, "payments"), "package %s: one payment", id)
		require.Equal(t, "active", str(t, p, "status"), "package %s", id)
		require.Equal(t, "1632.00", str(t, p, "paid"), "package %s", id)
	}

	// The money adds up: each package's invariant, each account, and the
	// roll-forward, whose closing is what the packages owe.
	var paid, recognized, liability decimal.Decimal
	accountLiability := map[string]decimal.Decimal{}
	for _, id := range allPkgs {
		p := pkgView(id)
		lhs := money(t, p, "paid").Sub(money(t, p, "voided"))
		rhs := money(t, p, "recognized").Add(money(t, p, "refunded")).Add(money(t, p, "breakage")).Add(money(t, p, "liability"))
		require.True(t, lhs.Equal(rhs), "package %s: paid − voided %s ≠ recognized + refunded + breakage + liability %s", id, lhs, rhs)
		paid, recognized, liability = paid.Add(money(t, p, "paid")), recognized.Add(money(t, p, "recognized")), liability.Add(money(t, p, "liability"))
		c := str(t, obj(t, p, "customer"), "id")
		accountLiability[c] = accountLiability[c].Add(money(t, p, "liability"))
	}
	for _, c := range customers {
		a := objAt(view, "account "+c)
		require.Equal(t, accountLiability[c].StringFixed(2), str(t, a, "liability"), "account %s", c)
		var ids []string
		for _, id := range allPkgs {
			if str(t, obj(t, pkgView(id), "customer"), "id") == c {
				ids = append(ids, id)
			}
		}
		require.ElementsMatch(t, ids, idsOf(a, "packages"), "account %s lists its packages", c)
	}
	rep := objAt(view, "liability")
	require.Equal(t, "0.00", str(t, rep, "opening"), "liability report: %v", rep)
	require.Equal(t, paid.StringFixed(2), str(t, rep, "payments"), "liability report: %v", rep)
	require.Equal(t, recognized.StringFixed(2), str(t, rep, "recognized"), "liability report: %v", rep)
	require.Equal(t, liability.StringFixed(2), str(t, rep, "closing"), "liability report: %v", rep)
	for _, k := range []string{"voids", "reversals", "refunds", "breakage"} {
		require.Equal(t, "0.00", str(t, rep, k), "liability report %s: %v", k, rep)
	}

	// Each server's own audit: ok, no findings, the same ledger.
	var verified []map[string]any
	for i, s := range servers {
		v := s.mustCall(http.StatusOK, auditor.Token, http.MethodGet, "/v1/audit/verify", nil)
		require.Equal(t, true, v["ok"], "server %d: /v1/audit/verify: %v", i, v)
		require.Empty(t, arr(t, v, "findings"), "server %d: /v1/audit/verify findings", i)
		require.Equal(t, liability.StringFixed(2), str(t, obj(t, v, "totals"), "liability"), "server %d: verify's total liability", i)
		verified = append(verified, v)
	}
	for i := 1; i < len(verified); i++ {
		require.Equal(t, verified[0]["events"], verified[i]["events"], "server %d verified another number of events", i)
		require.Equal(t, verified[0]["packages"], verified[i]["packages"], "server %d verified another number of packages", i)
		require.Equal(t, verified[0]["totals"], verified[i]["totals"], "server %d verified other totals", i)
	}
	for i, s := range servers {
		s.requireRunning()
		require.NotContains(t, s.stderr.String(), "level=ERROR", "server %d logged an error", i)
	}

	outcomes := map[string]int{}
	for _, r := range races {
		outcomes[fmt.Sprintf("%s %d %s", r.kind, r.ans.Status, r.ans.code())]++
	}
	t.Logf("3 servers on one JetStream; %d setup requests, %d race requests (%d writes released at once, read-backs included), %d after",
		setupRequests, raceRequests, len(races), requestsSent.Load()-setupRequests-raceRequests)
	t.Logf("races took %s; outcomes: %v", raceTook.Round(time.Millisecond), outcomes)
	t.Logf("JetStream refusals the servers got during the races (each a conflict decided again): %s", conflicts)
	t.Logf("answers retried by the clients (409 concurrent_update, 503): %v", retried)
	t.Logf("after the races: every /healthz at applied_seq %d in %s; every package, account and report equal on the three in %s (%d full reads); verify: %v events, %v packages on each server",
		lastSeq, appliedTook.Round(time.Microsecond), convergeTook.Round(time.Millisecond), polls+1, verified[0]["events"], verified[0]["packages"])
}

// ledgerView reads what the convergence check compares: every package,
// every account, the liability report and the projections' status of
// /healthz (its clocks left out). It fails on any answer but 200.
func (p *proc) ledgerView(token string, pkgs, customers []string) (map[string]any, error) {
	v := map[string]any{}
	get := func(name, path, tok string) error {
		a := p.call(tok, http.MethodGet, path, nil)
		if a.Err != nil {
			return a.Err
		}
		if a.Status != http.StatusOK {
			return fmt.Errorf("GET %s: %v", path, a)
		}
		v[name] = a.Body
		return nil
	}
	for _, id := range pkgs {
		if err := get("package "+id, "/v1/packages/"+id, token); err != nil {
			return nil, err
		}
	}
	for _, c := range customers {
		if err := get("account "+c, "/v1/accounts/"+c, token); err != nil {
			return nil, err
		}
	}
	if err := get("liability", "/v1/reports/liability", token); err != nil {
		return nil, err
	}
	if err := get("health", "/healthz", ""); err != nil {
		return nil, err
	}
	h, _ := v["health"].(map[string]any)
	delete(v, "health")
	proj := objAt(h, "projections")
	if proj == nil {
		return nil, errors.New("/healthz has no projections")
	}
	hv := map[string]any{"status": h["status"], "nats_connected": h["nats_connected"]}
	for k, x := range proj {
		if k == "as_of" || k == "age_seconds" {
			continue // when this server last dated its read models
		}
		hv[k] = x
	}
	v["healthz"] = hv
	return v, nil
}

// firstDifference names the first key whose values differ, for a message.
func firstDifference(a, b map[string]any) string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !reflect.DeepEqual(a[k], b[k]) {
			ja, _ := json.Marshal(a[k])
			jb, _ := json.Marshal(b[k])
			return fmt.Sprintf("%s:\n  %s\nvs\n  %s", k, ja, jb)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d keys vs %d", len(a), len(b))
	}
	return "nothing"
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	sort.Strings(c)
	return c
}

// TestMultiServer_StartTogether starts three `serve --demo` processes at
// the same moment on one new, empty ledger, as a deployment restarting
// every server at once does: all three must come up, the demo plans are
// defined once, not once per server, and every server shows them. A few
// rounds, since the start-up race has a short window.
func TestMultiServer_StartTogether(t *testing.T) {
	for round := 0; round < 5; round++ {
		ns := runPlainJetStream(t)
		keyFile := filepath.Join(t.TempDir(), "ledger.key")
		out, err := exec.Command(binPath, "key", "--init", "--key-file", keyFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
		var servers []*proc
		for i := 0; i < 3; i++ {
			servers = append(servers, spawnServer(t, t.TempDir(), "--nats", ns.ClientURL(), "--key-file", keyFile))
		}
		for _, s := range servers {
			s.awaitReady()
		}
		// A server that found another's first plan already written does
		// not wait for the rest, so each is polled up to the stream's end.
		nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(10*time.Second))
		require.NoError(t, err)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stream, err := js.Stream(ctx, "LEDGER")
		require.NoError(t, err)
		info, err := stream.Info(ctx)
		require.NoError(t, err)
		cancel()
		nc.Close()
		require.Equal(t, uint64(3), info.State.Msgs, "round %d: the three demo plans, each defined once", round)
		for i, s := range servers {
			deadline := time.Now().Add(readyTimeout)
			var h map[string]any
			for n := 0; n < 300 && time.Now().Before(deadline); n++ {
				if h = s.waitCaughtUp(); fmt.Sprint(obj(t, h, "projections")["applied_seq"]) == "3" {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			require.Equal(t, "3", fmt.Sprint(obj(t, h, "projections")["applied_seq"]), "round %d server %d: %v", round, i, h)
			plans := arr(t, s.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/plans", nil), "plans")
			require.Len(t, plans, 3, "round %d server %d lists the demo plans", round, i)
		}
		for _, s := range servers {
			s.Term()
		}
	}
}
