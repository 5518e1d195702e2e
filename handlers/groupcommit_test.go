package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/eventstore"
)

// TestAPI_ConcurrentRandomInvariant: sixteen tills at once, on two
// servers sharing the ledger, send a randomized mix of sales, partial
// payments (some with a receipt number another till used), redemptions,
// reversals, voids and refunds on the same packages, over stores that
// append any two concurrent writes as one atomic batch. Group commit
// decides them in parallel and stores them together, and each server's
// writes make the other's expected sequences stale inside its batches;
// nothing of it may show. Afterwards every package keeps §4's invariant, the totals are
// the sum of the packages, the auditor's full recomputation agrees, and
// the ledger holds exactly the payments and redemptions that were
// acknowledged: each once, and nothing of a refused request.
func TestAPI_ConcurrentRandomInvariant(t *testing.T) {
	seed := asOfSeed(t)
	always := eventstore.Config{GroupCommit: eventstore.GroupCommitAlways}
	a := newTestAPIConfig(t, true, always)
	servers := []*testAPI{a, a.another(always)}
	plans := definePlans(t, a)
	before := a.Store.CommitStats()

	const tills, commands = 16, 60
	seen := &acknowledgedWrites{paid: map[string]map[string]bool{}, redeemed: map[string]map[string]bool{}}
	var wg sync.WaitGroup
	errs := make(chan error, tills)
	for till := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &randomTill{api: servers[till%2], other: servers[1-till%2], till: till, plans: plans, seen: seen,
				rng: rand.New(rand.NewPCG(seed, uint64(till)))}
			for n := range commands {
				if err := r.command(n); err != nil {
					errs <- fmt.Errorf("till %d command %d: %w", till, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	ids, paid, redeemed := seen.ids, seen.paid, seen.redeemed
	// Both servers' writes are in what the first one reads.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Runner.WaitFor(ctx, lastSeq(t, a)))
	st := a.Store.CommitStats()
	require.Greater(t, st.Commands-before.Commands, st.Appends-before.Appends, "writes were appended together")
	pays, reds := 0, 0
	for _, id := range ids {
		pays, reds = pays+len(paid[id]), reds+len(redeemed[id])
	}
	t.Logf("%d packages, %d payments and %d redemptions acknowledged; %d commands in %d appends",
		len(ids), pays, reds, st.Commands-before.Commands, st.Appends-before.Appends)

	// Every package, as the API shows it, against what was acknowledged.
	var totalPaid, totalNet, totalLiability domain.Money
	for _, id := range ids {
		ans := mustSend(t, a, "GET", "/v1/packages/"+id, bearer(a, domain.RoleAuditor), nil)
		require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
		var p struct {
			Status                                                  string
			Paid, Voided, Recognized, Refunded, Breakage, Liability domain.Money
			Units                                                   []struct {
				Value        domain.Money
				RedemptionID *string `json:"redemption_id"`
			}
			Payments    []struct{ ID string }
			Redemptions []struct{ ID string }
		}
		require.NoError(t, json.Unmarshal(ans.Raw, &p))
		net := p.Paid.Sub(p.Voided)
		require.True(t, net.Equal(p.Recognized.Add(p.Refunded).Add(p.Breakage).Add(p.Liability)),
			"%s: paid − voided = recognized + refunded + breakage + liability: %s", id, ans.Raw)
		require.False(t, p.Liability.IsNegative(), "%s: liability ≥ 0", id)
		if p.Status == string(domain.StatusActive) {
			unused := domain.Cents(0)
			for _, u := range p.Units {
				if u.RedemptionID == nil {
					unused = unused.Add(u.Value)
				}
			}
			require.True(t, unused.Equal(p.Liability), "%s: an active package owes its unused units", id)
		}
		var gotPay, gotRed []string
		for _, x := range p.Payments {
			gotPay = append(gotPay, x.ID)
		}
		for _, x := range p.Redemptions {
			gotRed = append(gotRed, x.ID)
		}
		require.Equal(t, sortedKeys(paid[id]), sorted(gotPay), "%s: exactly the acknowledged payments", id)
		require.Equal(t, sortedKeys(redeemed[id]), sorted(gotRed), "%s: exactly the acknowledged redemptions", id)
		totalPaid, totalNet, totalLiability = totalPaid.Add(p.Paid), totalNet.Add(net), totalLiability.Add(p.Liability)
	}

	// The auditor's recomputation from the log agrees with the sums.
	ans := mustSend(t, a, "GET", "/v1/audit/verify", bearer(a, domain.RoleAuditor), nil)
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	var v struct {
		OK       bool
		Packages int
		Totals   struct{ Paid, Voided, Liability domain.Money }
		Findings []any
	}
	require.NoError(t, json.Unmarshal(ans.Raw, &v))
	require.True(t, v.OK, "%s", ans.Raw)
	require.Empty(t, v.Findings)
	require.Equal(t, len(ids), v.Packages)
	require.True(t, v.Totals.Paid.Equal(totalPaid), "paid: %s vs %s", v.Totals.Paid, totalPaid)
	require.True(t, v.Totals.Paid.Sub(v.Totals.Voided).Equal(totalNet))
	require.True(t, v.Totals.Liability.Equal(totalLiability), "liability: %s vs %s", v.Totals.Liability, totalLiability)
}

// acknowledgedWrites is what the tills were told was done.
type acknowledgedWrites struct {
	mu       sync.Mutex
	ids      []string                   // packages sold
	paid     map[string]map[string]bool // package → acknowledged payment ids
	redeemed map[string]map[string]bool // package → acknowledged redemption ids
	receipts []string                   // receipt numbers used, for reuse
}

func (w *acknowledgedWrites) pick(rng *rand.Rand) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ids) == 0 {
		return "", false
	}
	return w.ids[rng.IntN(len(w.ids))], true
}

// randomTill is one till of TestAPI_ConcurrentRandomInvariant.
type randomTill struct {
	api, other *testAPI // its server, and the other one
	rng        *rand.Rand
	till       int
	plans      []string
	seen       *acknowledgedWrites
}

// post sends a write. Now and then it carries an Idempotency-Key and,
// once answered, is sent again to the other server, as a till retrying
// through another server would: the repeat must give the first answer,
// whatever the other server had cached of the package.
func (r *randomTill) post(n int, path string, role domain.Role, body any) (answer, error) {
	if r.rng.IntN(4) != 0 {
		return send(r.api, "POST", path, bearer(r.api, role), body)
	}
	key := fmt.Sprintf("K-%d-%d", r.till, n)
	first, err := send(r.api, "POST", path, bearer(r.api, role), body, "Idempotency-Key", key)
	if err != nil || first.Status >= 300 || r.rng.IntN(2) == 0 {
		return first, err
	}
	again, err := send(r.other, "POST", path, bearer(r.other, role), body, "Idempotency-Key", key)
	if err != nil {
		return first, err
	}
	if a, b := writeOf(first.Raw), writeOf(again.Raw); again.Status != first.Status || a != b {
		return first, fmt.Errorf("POST %s with key %s: first %d %s, repeated on the other server %d %s",
			path, key, first.Status, first.Raw, again.Status, again.Raw)
	}
	return first, nil
}

// writeOf names what a write's answer says it did: the package sold, or
// the payment or redemption recorded.
func writeOf(raw []byte) string {
	var w struct {
		ID         string
		Payment    *struct{ ID string }
		Redemption *struct{ ID string }
	}
	_ = json.Unmarshal(raw, &w)
	switch {
	case w.Payment != nil:
		return "payment " + w.Payment.ID
	case w.Redemption != nil:
		return "redemption " + w.Redemption.ID
	}
	return w.ID
}

// command sends one random command as the till and records what was
// acknowledged. A refusal (4xx) is an answer like any other; a 5xx or a
// broken answer is an error.
func (r *randomTill) command(n int) error {
	a, rng, till, plans, w := r.api, r.rng, r.till, r.plans, r.seen
	id, ok := w.pick(rng)
	if !ok || rng.IntN(12) == 0 {
		ans, err := r.post(n, "/v1/packages", domain.RoleAdvisor, map[string]any{
			"plan":     plans[rng.IntN(len(plans))],
			"customer": map[string]any{"id": fmt.Sprintf("C-%d", till), "name": "Li Wei", "phone": "13800138000"},
			"vehicle":  map[string]any{"vin": "LSVAU2180N2183294", "plate": "沪A12345", "model": "Lavida"},
		})
		if err := acknowledged(ans, err, http.StatusCreated); err != nil {
			return err
		}
		var sold struct{ ID string }
		if err := json.Unmarshal(ans.Raw, &sold); err != nil {
			return err
		}
		w.mu.Lock()
		w.ids = append(w.ids, sold.ID)
		w.paid[sold.ID], w.redeemed[sold.ID] = map[string]bool{}, map[string]bool{}
		w.mu.Unlock()
		return nil
	}
	pkg, err := send(a, "GET", "/v1/packages/"+id, bearer(a, domain.RoleAuditor), nil)
	if err := acknowledged(pkg, err, http.StatusOK); err != nil {
		return err
	}
	var p struct {
		Status              domain.Status
		Price, Paid, Voided domain.Money
		Remaining           map[string]int
		Payments            []struct {
			ID     string
			Voided bool
		}
		Redemptions []struct {
			ID       string
			Reversed bool
		}
	}
	if err := json.Unmarshal(pkg.Raw, &p); err != nil {
		return err
	}
	// Mostly what the package's state calls for, sometimes what it
	// refuses.
	kind := rng.IntN(10)
	switch {
	case p.Status == domain.StatusAwaitingPayment && kind < 8:
		kind = 0
	case p.Status == domain.StatusActive && kind < 6:
		kind = 4
	}
	path := "/v1/packages/" + id
	var role domain.Role
	var body map[string]any
	switch {
	case kind <= 3: // a payment of part or all of what is owed, or more
		owed := p.Price.Sub(p.Paid.Sub(p.Voided))
		if !owed.IsPositive() {
			owed = domain.Cents(100)
		}
		cents := owed.Decimal().Shift(2).IntPart()
		amount := owed // most tills take what is owed
		switch rng.IntN(5) {
		case 0:
			amount = domain.Cents(1 + rng.Int64N(cents)) // a part of it
		case 1:
			amount = domain.Cents(cents + 1 + rng.Int64N(100)) // too much: refused
		}
		receipt := fmt.Sprintf("R-%d-%d", till, n)
		w.mu.Lock()
		if len(w.receipts) > 0 && rng.IntN(8) == 0 {
			receipt = w.receipts[rng.IntN(len(w.receipts))] // another till's number
		}
		w.receipts = append(w.receipts, receipt)
		w.mu.Unlock()
		path, role, body = path+"/payments", domain.RoleCashier, map[string]any{"amount": amount.String(), "method": "cash", "receipt": receipt}
	case kind <= 6:
		services := make([]string, 0, len(p.Remaining))
		for s := range p.Remaining {
			services = append(services, s)
		}
		sort.Strings(services)
		path, role, body = path+"/redemptions", domain.RoleAdvisor, map[string]any{
			"service": services[rng.IntN(len(services))], "repair_order": fmt.Sprintf("RO-%d-%d", till, n), "mileage": 1000 + n}
	case kind == 7 && len(p.Redemptions) > 0:
		r := p.Redemptions[rng.IntN(len(p.Redemptions))]
		path, role, body = path+"/redemptions/"+r.ID+"/reverse", domain.RoleManager, map[string]any{"reason": "wrong car"}
	case kind == 8 && len(p.Payments) > 0:
		x := p.Payments[rng.IntN(len(p.Payments))]
		path, role, body = path+"/payments/"+x.ID+"/void", domain.RoleManager, map[string]any{"reason": "typo"}
	default:
		path, role, body = path+"/refund", domain.RoleManager, map[string]any{"method": "cash", "reason": "moving away"}
	}
	ans, err := r.post(n, path, role, body)
	if err != nil {
		return err
	}
	if ans.Status >= 500 || ans.Status == http.StatusUnauthorized || ans.Status == http.StatusForbidden {
		return fmt.Errorf("POST %s: %d %s", path, ans.Status, ans.Raw)
	}
	if ans.Status != http.StatusCreated {
		return nil // refused, or a repeat answered with the first result
	}
	var done struct {
		Payment    *struct{ ID string }
		Redemption *struct{ ID string }
	}
	if err := json.Unmarshal(ans.Raw, &done); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if done.Payment != nil {
		w.paid[id][done.Payment.ID] = true
	}
	if done.Redemption != nil {
		w.redeemed[id][done.Redemption.ID] = true
	}
	return nil
}

func acknowledged(ans answer, err error, want int) error {
	if err != nil {
		return err
	}
	if ans.Status != want {
		return fmt.Errorf("%d, want %d: %s", ans.Status, want, ans.Raw)
	}
	return nil
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}
