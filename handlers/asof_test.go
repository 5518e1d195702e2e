package handlers_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// asOfSeed returns the seed of the randomized history: PACKLEDGER_SEED
// when set, else a fresh one; it is printed when the test fails.
func asOfSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PACKLEDGER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "PACKLEDGER_SEED")
		seed = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("randomized with seed %d: rerun with PACKLEDGER_SEED=%d go test ./handlers -run '%s' -count=1", seed, seed, t.Name())
		}
	})
	return seed
}

// asOfSnapshot is what the API answered for every package sold so far, at
// an instant between two commands.
type asOfSnapshot struct {
	at       time.Time
	what     string // how the instant was chosen
	packages map[string]map[string]any
}

// asOfFields are the package fields balances?as_of must reproduce.
var asOfFields = []string{"status", "paid", "voided", "recognized", "refunded", "breakage", "liability", "remaining", "seq"}

// asOfMoneyFields are summed into the totals.
var asOfMoneyFields = []string{"paid", "voided", "recognized", "refunded", "breakage", "liability"}

// TestAudit_BalancesAsOf runs a randomized history of sales, partial
// payments, voids, redemptions, reversals and refunds over the API on an
// injected clock, records what GET /v1/packages/{id} answered for every
// package at about ten instants between commands, and then requires GET
// /v1/audit/balances?as_of=T to give, for each instant T, exactly those
// packages with exactly those figures, and totals that are their sum.
func TestAudit_BalancesAsOf(t *testing.T) {
	seed := asOfSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	a := newTestAPI(t)

	plans := definePlans(t, a)

	const (
		commands  = 300 // sent, refusals included
		wantSnaps = 10
		maxPkgs   = 30
	)
	// The commands after which an instant is recorded (by their number
	// among those sent), chosen up front; one more instant before the
	// first sale.
	snapAfter := map[int]bool{}
	for len(snapAfter) < wantSnaps {
		snapAfter[20+rng.IntN(commands-19)] = true
	}

	state := map[string]map[string]any{} // package id → the API's latest answer
	var ids []string                     // in order of sale
	var snaps []asOfSnapshot
	counts := map[string]int{}
	refs := 0
	ref := func(prefix string) string { refs++; return fmt.Sprintf("%s-%d-%d", prefix, seed%100000, refs) }

	// snapshot records GET /v1/packages/{id} for every package now, at an
	// instant T in [now, now+gap): after the last event, before the next.
	snapshot := func(gap time.Duration) {
		t.Helper()
		now := a.Now()
		s := asOfSnapshot{packages: map[string]map[string]any{}}
		switch rng.IntN(3) {
		case 0:
			s.at, s.what = now, "exactly at the last command's recorded_at"
		case 1:
			s.at, s.what = now.Add(gap-time.Nanosecond), "a nanosecond before the next command"
		default:
			s.at, s.what = now.Add(time.Duration(rng.Int64N(int64(gap)))), "between two commands"
		}
		for _, id := range ids {
			st, body := a.Do("GET", "/v1/packages/"+id, domain.RoleAuditor, nil)
			require.Equal(t, http.StatusOK, st, "%v", body)
			s.packages[id] = body
		}
		snaps = append(snaps, s)
	}

	// do sends one command; a refusal (409, 422) is allowed and changes
	// nothing, anything else but success fails the test.
	sent := 0
	do := func(kind, method, path string, role domain.Role, body any) map[string]any {
		t.Helper()
		sent++
		seqBefore := a.LastSeq()
		st, out := a.Do(method, path, role, body)
		switch st {
		case http.StatusOK, http.StatusCreated:
			counts[kind]++
			return out
		case http.StatusConflict, http.StatusUnprocessableEntity:
			counts["refused "+kind]++
			require.Equal(t, seqBefore, a.LastSeq(), "a refused %s appends nothing", kind)
			return nil
		}
		t.Fatalf("%s %s as %s: %d %v", method, path, role, st, out)
		return nil
	}
	pkgOf := func(out map[string]any) map[string]any {
		if p, ok := out["package"].(map[string]any); ok {
			return p
		}
		return out
	}
	pickUnvoidedPayment := func(p map[string]any) string {
		var ok []string
		for _, x := range p["payments"].([]any) {
			if pay := x.(map[string]any); pay["voided"] != true {
				ok = append(ok, pay["id"].(string))
			}
		}
		if len(ok) == 0 {
			return ""
		}
		return ok[rng.IntN(len(ok))]
	}
	pickRedemption := func(p map[string]any) string {
		var ok []string
		for _, x := range p["redemptions"].([]any) {
			if r := x.(map[string]any); r["reversed"] != true {
				ok = append(ok, r["id"].(string))
			}
		}
		if len(ok) == 0 {
			return ""
		}
		return ok[rng.IntN(len(ok))]
	}
	methods := []string{"cash", "card", "wechat", "alipay", "bank_transfer"}

	gap := time.Duration(1+rng.IntN(180)) * time.Minute
	snapshot(gap) // before any sale: no packages
	idle := 0     // iterations in a row that sent nothing
	for i := 0; sent < commands; i++ {
		require.Less(t, i, 20*commands, "the history stopped sending commands")
		sentBefore := sent
		a.Advance(gap)
		// Past maxPkgs only when every package has settled (refunded,
		// used up) and nothing else is left to do.
		if len(ids) < 5 || (len(ids) < maxPkgs && rng.Float64() < 0.12) || idle > 50 {
			out := do("sell", "POST", "/v1/packages", domain.RoleAdvisor, map[string]any{
				"plan":     plans[rng.IntN(len(plans))],
				"customer": map[string]any{"id": fmt.Sprintf("C-%d", rng.IntN(12)), "name": "Li Wei", "phone": "13800138000"},
				"vehicle":  map[string]any{"vin": fmt.Sprintf("LSVAU2180N%07d", rng.IntN(10_000_000)), "plate": fmt.Sprintf("沪A%05d", rng.IntN(100000)), "model": "Lavida"},
			})
			require.NotNil(t, out, "a sale of an active plan is not refused")
			id := out["id"].(string)
			ids = append(ids, id)
			state[id] = out
		} else {
			id := ids[rng.IntN(len(ids))]
			p := state[id]
			base := "/v1/packages/" + id
			x := rng.Float64()
			var out map[string]any
			switch p["status"] {
			case "awaiting_payment":
				due := domain.MustMoney(p["price"].(string)).Sub(domain.MustMoney(p["paid"].(string))).Add(domain.MustMoney(p["voided"].(string)))
				switch {
				case x < 0.75:
					amount := due
					if cents := due.Decimal().Shift(2).IntPart(); cents > 1 && rng.Float64() < 0.5 {
						amount = domain.Cents(1 + rng.Int64N(cents-1))
					}
					out = do("payment", "POST", base+"/payments", domain.RoleCashier, map[string]any{
						"amount": amount.String(), "method": methods[rng.IntN(len(methods))], "receipt": ref("R"),
					})
				case x < 0.9:
					if pid := pickUnvoidedPayment(p); pid != "" {
						out = do("void", "POST", base+"/payments/"+pid+"/void", domain.RoleManager, map[string]any{"reason": "keyed wrong"})
					}
				default:
					out = do("refund", "POST", base+"/refund", domain.RoleManager, map[string]any{"method": "cash", "reason": "changed mind"})
				}
			case "active":
				switch {
				case x < 0.62:
					units := p["units"].([]any)
					svc := units[rng.IntN(len(units))].(map[string]any)["service"].(string)
					out = do("redemption", "POST", base+"/redemptions", domain.RoleAdvisor, map[string]any{
						"service": svc, "repair_order": ref("RO"), "mileage": rng.IntN(200000),
					})
				case x < 0.77:
					if rid := pickRedemption(p); rid != "" {
						out = do("reversal", "POST", base+"/redemptions/"+rid+"/reverse", domain.RoleManager, map[string]any{"reason": "wrong car"})
					}
				case x < 0.87:
					if pid := pickUnvoidedPayment(p); pid != "" {
						out = do("void", "POST", base+"/payments/"+pid+"/void", domain.RoleManager, map[string]any{"reason": "wrong package"})
					}
				case x < 0.95:
					out = do("refund", "POST", base+"/refund", domain.RoleManager, map[string]any{"method": methods[rng.IntN(len(methods))], "reason": "moved away"})
				}
			case "used_up":
				if rid := pickRedemption(p); rid != "" && x < 0.6 {
					out = do("reversal", "POST", base+"/redemptions/"+rid+"/reverse", domain.RoleManager, map[string]any{"reason": "wrong car"})
				}
			}
			if out != nil {
				state[id] = pkgOf(out)
			}
		}
		if sent == sentBefore {
			// Nothing to do on that package: take the clock back, so that
			// the instant recorded last is still just before the next
			// command.
			a.Advance(-gap)
			idle++
			continue
		}
		idle = 0
		gap = time.Duration(1+rng.IntN(180)) * time.Minute
		if snapAfter[sent] {
			snapshot(gap)
		}
	}
	t.Logf("seed %d: %d packages, %d commands, %d events on the stream, over %s; commands %v",
		seed, len(ids), sent, a.LastSeq(), a.Now().Sub(snaps[0].at).Round(time.Minute), counts)
	for _, kind := range []string{"sell", "payment", "void", "redemption", "reversal", "refund"} {
		require.Positive(t, counts[kind], "the history has a %s", kind)
	}
	require.Len(t, snaps, wantSnaps+1)
	require.Empty(t, snaps[0].packages)

	for k, s := range snaps {
		as := s.at.UTC().Format(time.RFC3339Nano)
		st, body := a.Do("GET", "/v1/audit/balances?as_of="+url.QueryEscape(as), domain.RoleAuditor, nil)
		require.Equal(t, http.StatusOK, st, "%v", body)
		asOf, err := time.Parse(time.RFC3339Nano, body["as_of"].(string))
		require.NoError(t, err)
		require.True(t, asOf.Equal(s.at), "snapshot %d: as_of %s is the instant asked, %s", k, body["as_of"], as)

		got := map[string]map[string]any{}
		for _, x := range body["packages"].([]any) {
			p := x.(map[string]any)
			got[p["id"].(string)] = p
		}
		require.Equal(t, sortedKeys(s.packages), sortedKeys(got),
			"snapshot %d at %s (%s): the packages sold by then, and no other", k, as, s.what)
		sum := map[string]domain.Money{}
		for id, want := range s.packages {
			for _, f := range asOfFields {
				require.Equal(t, want[f], got[id][f], "snapshot %d at %s (%s): package %s %s", k, as, s.what, id, f)
			}
			for _, f := range asOfMoneyFields {
				sum[f] = sum[f].Add(domain.MustMoney(want[f].(string)))
			}
		}
		totals := body["totals"].(map[string]any)
		for _, f := range asOfMoneyFields {
			require.Equal(t, sum[f].String(), totals[f], "snapshot %d at %s: totals.%s is the sum over packages", k, as, f)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// definePlans defines the randomized histories' three plans and returns
// their codes: the worked example (pro rata), a mixed plan by list price
// with a free look, and one whose unit values carry leftover cents.
func definePlans(t *testing.T, a *testAPI) []string {
	t.Helper()
	a.Plan("OIL6")
	for _, plan := range []map[string]any{{
		"code": "MIX", "name": "oil and inspection",
		"entitlements": []map[string]any{
			{"service": "oil_change", "count": 4, "list_price": "480.00"},
			{"service": "inspection", "count": 2, "list_price": "200.00"},
		},
		"price": "1999.99", "validity_months": 12, "refund_policy": "list_price",
		"cancellation_fee_rate": "0.05", "free_look_days": 7,
	}, {
		"code": "TEN", "name": "ten rotations",
		"entitlements": []map[string]any{{"service": "tire_rotation", "count": 10, "list_price": "133.33"}},
		"rate":         "0.8", "validity_months": 12, "refund_policy": "pro_rata", "cancellation_fee_rate": "0.10",
	}} {
		st, body := a.Do("POST", "/v1/plans", domain.RoleManager, plan)
		require.Equal(t, http.StatusCreated, st, "define plan: %v", body)
	}
	return []string{"OIL6", "MIX", "TEN"}
}
