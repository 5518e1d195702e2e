package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// race sends n requests at once (as near as goroutines allow) and returns
// the answers in the order of i.
func race(t *testing.T, n int, do func(i int) (answer, error)) []answer {
	t.Helper()
	out := make([]answer, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = do(i)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	return out
}

// getPackage reads a package as the auditor.
func getPackage(t testing.TB, a *testAPI, id string) map[string]any {
	t.Helper()
	ans := mustSend(t, a, "GET", "/v1/packages/"+id, bearer(a, domain.RoleAuditor), nil)
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	return ans.JSON(t)
}

// eventTypes counts a package's events by type, from its history as the
// manager reads it.
func eventTypes(t testing.TB, a *testAPI, id string) map[string]int {
	t.Helper()
	ans := mustSend(t, a, "GET", "/v1/packages/"+id+"/history", bearer(a, domain.RoleManager), nil)
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	var h struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(ans.Raw, &h))
	n := map[string]int{}
	for _, e := range h.Events {
		n[e.Type]++
	}
	return n
}

func redemptionID(t testing.TB, ans answer) string {
	t.Helper()
	return ans.JSON(t)["redemption"].(map[string]any)["id"].(string)
}

func paymentID(t testing.TB, ans answer) string {
	t.Helper()
	return ans.JSON(t)["payment"].(map[string]any)["id"].(string)
}

// TestAPI_LastVisitRace: fifty advisors deduct the last visit of one
// package at once, each for a different repair order. One gets it.
func TestAPI_LastVisitRace(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6") // 6 × 408.00
	id := sell(t, a, "OIL6")
	pay(t, a, id, "2448.00", "R-RACE-1")
	for i := 1; i <= 5; i++ {
		redeem(t, a, id, fmt.Sprintf("RO-%d", i))
	}
	p := getPackage(t, a, id)
	require.Equal(t, "408.00", p["liability"])
	require.Equal(t, map[string]any{"oil_change": float64(1)}, p["remaining"])

	const n = 50
	before := lastSeq(t, a)
	answers := race(t, n, func(i int) (answer, error) {
		return send(a, "POST", "/v1/packages/"+id+"/redemptions", bearer(a, domain.RoleAdvisor),
			redeemBody(fmt.Sprintf("RO-RACE-%02d", i)))
	})

	winner := -1
	refused := 0
	for i, ans := range answers {
		switch ans.Status {
		case http.StatusCreated:
			require.Equal(t, -1, winner, "two redemptions of the last visit: %d and %d", winner, i)
			winner = i
		case http.StatusConflict:
			code, _ := requireErrorShape(t, ans)
			require.Equal(t, "no_visits_left", code, "%s", ans.Raw)
			refused++
		default:
			t.Fatalf("request %d: status %d: %s", i, ans.Status, ans.Raw)
		}
	}
	require.NotEqual(t, -1, winner, "no request got the last visit")
	require.Equal(t, n-1, refused)
	require.Equal(t, before+1, lastSeq(t, a), "exactly one event appended")

	won := answers[winner].JSON(t)["redemption"].(map[string]any)
	require.Equal(t, fmt.Sprintf("RO-RACE-%02d", winner), won["repair_order"])
	require.Equal(t, "408.00", won["value"])

	p = getPackage(t, a, id)
	require.Equal(t, "used_up", p["status"])
	require.Equal(t, "0.00", p["liability"])
	require.Equal(t, "2448.00", p["recognized"])
	require.Equal(t, map[string]any{"oil_change": float64(0)}, p["remaining"])
	reds := p["redemptions"].([]any)
	require.Len(t, reds, 6)
	require.Equal(t, won["id"], reds[5].(map[string]any)["id"])
	for _, u := range p["units"].([]any) {
		require.NotNil(t, u.(map[string]any)["redemption_id"])
	}
	require.Equal(t, 6, eventTypes(t, a, id)["VisitRedeemed"])
}

// TestAPI_IdenticalRedemptions: one repair order sent twenty times at once
// (a double click, a retrying client) deducts one visit.
func TestAPI_IdenticalRedemptions(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	id := sell(t, a, "OIL6")
	pay(t, a, id, "2448.00", "R-SAME-1")

	const n = 20
	before := lastSeq(t, a)
	body := redeemBody("RO-SAME")
	answers := race(t, n, func(int) (answer, error) {
		return send(a, "POST", "/v1/packages/"+id+"/redemptions", bearer(a, domain.RoleAdvisor), body)
	})
	created, ids := 0, map[string]bool{}
	for i, ans := range answers {
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, ans.Status, "request %d: %s", i, ans.Raw)
		if ans.Status == http.StatusCreated {
			created++
		}
		ids[redemptionID(t, ans)] = true
	}
	require.Equal(t, 1, created, "exactly one answer is the deduction")
	require.Len(t, ids, 1, "every answer names the same redemption")
	require.Equal(t, before+1, lastSeq(t, a))
	require.Equal(t, 1, eventTypes(t, a, id)["VisitRedeemed"])

	// Later, the same again: the first redemption, nothing appended.
	ans := mustSend(t, a, "POST", "/v1/packages/"+id+"/redemptions", bearer(a, domain.RoleAdvisor), body)
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	for rid := range ids {
		require.Equal(t, rid, redemptionID(t, ans))
	}
	require.Equal(t, before+1, lastSeq(t, a))

	// The repair order is trimmed before it is recorded: with spaces
	// around it, it is the same repair order.
	ans = mustSend(t, a, "POST", "/v1/packages/"+id+"/redemptions", bearer(a, domain.RoleAdvisor), redeemBody("  RO-SAME "))
	require.Equal(t, http.StatusOK, ans.Status, "%s", ans.Raw)
	for rid := range ids {
		require.Equal(t, rid, redemptionID(t, ans))
	}
	require.Equal(t, before+1, lastSeq(t, a))

	p := getPackage(t, a, id)
	require.Equal(t, "2040.00", p["liability"])
	require.Equal(t, map[string]any{"oil_change": float64(5)}, p["remaining"])
	require.Len(t, p["redemptions"].([]any), 1)
}

func TestAPI_IdempotencyKey(t *testing.T) {
	a := newTestAPI(t)
	a.Plan("OIL6")
	mgr, adv, csh := bearer(a, domain.RoleManager), bearer(a, domain.RoleAdvisor), bearer(a, domain.RoleCashier)

	// repeat sends the same request twice with one key and checks that the
	// second answer is the first and appended nothing.
	repeat := func(t *testing.T, path, auth string, body any, key string, status int) map[string]any {
		t.Helper()
		first := mustSend(t, a, "POST", path, auth, body, "Idempotency-Key", key)
		require.Equal(t, status, first.Status, "%s", first.Raw)
		after := lastSeq(t, a)
		for range 2 {
			again := mustSend(t, a, "POST", path, auth, body, "Idempotency-Key", key)
			require.Equal(t, first.Status, again.Status, "%s", again.Raw)
			require.Equal(t, first.JSON(t), again.JSON(t), "the repeat's answer differs from the first")
			require.Equal(t, after, lastSeq(t, a), "the repeat appended")
		}
		return first.JSON(t)
	}

	t.Run("plan", func(t *testing.T) {
		repeat(t, "/v1/plans", mgr, planBody("KEYPLAN"), "key-plan-1", http.StatusCreated)
	})

	t.Run("sale", func(t *testing.T) {
		before := lastSeq(t, a)
		p := repeat(t, "/v1/packages", adv, sellBody("OIL6"), "key-sale-1", http.StatusCreated)
		require.Equal(t, before+1, lastSeq(t, a))
		// The sale's id is the one found by VIN: one package, not three.
		require.Equal(t, "awaiting_payment", getPackage(t, a, p["id"].(string))["status"])
	})

	t.Run("sale repeated concurrently", func(t *testing.T) {
		before := lastSeq(t, a)
		answers := race(t, 10, func(int) (answer, error) {
			return send(a, "POST", "/v1/packages", adv, sellBody("OIL6"), "Idempotency-Key", "key-sale-race")
		})
		ids := map[string]bool{}
		for _, ans := range answers {
			require.Equal(t, http.StatusCreated, ans.Status, "%s", ans.Raw)
			ids[ans.JSON(t)["id"].(string)] = true
		}
		require.Len(t, ids, 1, "one sale")
		require.Equal(t, before+1, lastSeq(t, a))
	})

	t.Run("payment", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		before := lastSeq(t, a)
		b := repeat(t, "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-KEY-1"), "key-pay-1", http.StatusCreated)
		require.Equal(t, before+2, lastSeq(t, a), "a payment and its receipt claim")
		require.Len(t, b["package"].(map[string]any)["payments"].([]any), 1)
		// The activating payment appends three messages; its repeat none.
		repeat(t, "/v1/packages/"+id+"/payments", csh, payBody("2348.00", "R-KEY-2"), "key-pay-2", http.StatusCreated)
		p := getPackage(t, a, id)
		require.Equal(t, "active", p["status"])
		require.Equal(t, "2448.00", p["paid"])
	})

	t.Run("payment repeated concurrently", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		before := lastSeq(t, a)
		answers := race(t, 10, func(int) (answer, error) {
			return send(a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-KEY-RACE"), "Idempotency-Key", "key-pay-race")
		})
		ids := map[string]bool{}
		for _, ans := range answers {
			require.Equal(t, http.StatusCreated, ans.Status, "%s", ans.Raw)
			ids[paymentID(t, ans)] = true
		}
		require.Len(t, ids, 1)
		require.Equal(t, before+2, lastSeq(t, a))
		require.Equal(t, "100.00", getPackage(t, a, id)["paid"])
	})

	t.Run("redemption", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		pay(t, a, id, "2448.00", "R-KEY-RED")
		before := lastSeq(t, a)
		repeat(t, "/v1/packages/"+id+"/redemptions", adv, redeemBody("RO-KEY-1"), "key-red-1", http.StatusCreated)
		require.Equal(t, before+1, lastSeq(t, a))
		require.Equal(t, 1, eventTypes(t, a, id)["VisitRedeemed"])
	})

	// reused sends first, then second with the same key, and expects the
	// second refused as a reuse, with nothing appended.
	type req struct {
		path, auth string
		body       any
	}
	reused := func(t *testing.T, key string, first req, firstStatus int, second req) {
		t.Helper()
		ans := mustSend(t, a, "POST", first.path, first.auth, first.body, "Idempotency-Key", key)
		require.Equal(t, firstStatus, ans.Status, "%s", ans.Raw)
		before := lastSeq(t, a)
		ans = mustSend(t, a, "POST", second.path, second.auth, second.body, "Idempotency-Key", key)
		require.Equal(t, http.StatusUnprocessableEntity, ans.Status, "%s", ans.Raw)
		code, _ := requireErrorShape(t, ans)
		require.Equal(t, "idempotency_key_reused", code)
		require.Equal(t, before, lastSeq(t, a))
	}

	t.Run("key reused: define then retire the same plan", func(t *testing.T) {
		reused(t, "key-reuse-1",
			req{"/v1/plans", mgr, planBody("REUSE1")}, http.StatusCreated,
			req{"/v1/plans/REUSE1/retire", mgr, map[string]any{"reason": "gone"}})
	})

	t.Run("key reused: define a plan then refund a package", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		pay(t, a, id, "2448.00", "R-REUSE-2")
		reused(t, "key-reuse-2",
			req{"/v1/plans", mgr, planBody("REUSE2")}, http.StatusCreated,
			req{"/v1/packages/" + id + "/refund", mgr, map[string]any{"method": "cash", "reason": "moved"}})
	})

	t.Run("key reused: sale then redemption", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		pay(t, a, id, "2448.00", "R-REUSE-3")
		reused(t, "key-reuse-3",
			req{"/v1/packages", adv, sellBody("OIL6")}, http.StatusCreated,
			req{"/v1/packages/" + id + "/redemptions", adv, redeemBody("RO-REUSE-3")})
	})

	t.Run("key reused: redemption then sale", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		pay(t, a, id, "2448.00", "R-REUSE-4")
		reused(t, "key-reuse-4",
			req{"/v1/packages/" + id + "/redemptions", adv, redeemBody("RO-REUSE-4")}, http.StatusCreated,
			req{"/v1/packages", adv, sellBody("OIL6")})
	})

	t.Run("key reused: payment on another package", func(t *testing.T) {
		p1, p2 := sell(t, a, "OIL6"), sell(t, a, "OIL6")
		reused(t, "key-reuse-5",
			req{"/v1/packages/" + p1 + "/payments", csh, payBody("100.00", "R-REUSE-5A")}, http.StatusCreated,
			req{"/v1/packages/" + p2 + "/payments", csh, payBody("100.00", "R-REUSE-5B")})
	})

	t.Run("one key, two users, two requests", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		ans := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("2448.00", "R-SHARED-KEY"), "Idempotency-Key", "shared-key")
		require.Equal(t, http.StatusCreated, ans.Status, "%s", ans.Raw)
		ans = mustSend(t, a, "POST", "/v1/packages/"+id+"/redemptions", adv, redeemBody("RO-SHARED-KEY"), "Idempotency-Key", "shared-key")
		require.Equal(t, http.StatusCreated, ans.Status, "another user's key is not this one's: %s", ans.Raw)
	})

	t.Run("one receipt raced on two packages", func(t *testing.T) {
		for round := range 5 {
			p1, p2 := sell(t, a, "OIL6"), sell(t, a, "OIL6")
			receipt := fmt.Sprintf("R-RACE2-%d", round)
			before := lastSeq(t, a)
			answers := race(t, 2, func(i int) (answer, error) {
				return send(a, "POST", "/v1/packages/"+[]string{p1, p2}[i]+"/payments", csh, payBody("100.00", receipt))
			})
			checkReceiptRace(t, a, answers, []string{p1, p2}, receipt)
			require.Equal(t, before+2, lastSeq(t, a), "one payment and one claim")
		}
	})

	t.Run("one receipt raced on eight packages", func(t *testing.T) {
		ids := make([]string, 8)
		for i := range ids {
			ids[i] = sell(t, a, "OIL6")
		}
		before := lastSeq(t, a)
		answers := race(t, len(ids), func(i int) (answer, error) {
			// The full price: the winner also activates its package.
			return send(a, "POST", "/v1/packages/"+ids[i]+"/payments", csh, payBody("2448.00", "R-RACE8"))
		})
		winner := checkReceiptRace(t, a, answers, ids, "R-RACE8")
		require.Equal(t, before+3, lastSeq(t, a), "payment, activation and claim")
		require.Equal(t, "active", getPackage(t, a, ids[winner])["status"])
	})

	t.Run("same receipt and amount on the same package again", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		first := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-AGAIN-1"))
		require.Equal(t, http.StatusCreated, first.Status, "%s", first.Raw)
		before := lastSeq(t, a)
		for range 2 {
			again := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-AGAIN-1"))
			require.Equal(t, http.StatusOK, again.Status, "%s", again.Raw)
			require.Equal(t, first.JSON(t)["payment"], again.JSON(t)["payment"])
			require.Equal(t, before, lastSeq(t, a))
		}
		// The receipt is trimmed before it is recorded, so the same receipt
		// typed with spaces around it is the same receipt.
		t.Run("padded", func(t *testing.T) {
			again := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", " R-AGAIN-1 "))
			require.Equal(t, http.StatusOK, again.Status, "%s", again.Raw)
			require.Equal(t, first.JSON(t)["payment"], again.JSON(t)["payment"])
			require.Equal(t, before, lastSeq(t, a))
		})
		// And once the package is fully paid: still the first payment.
		pay(t, a, id, "2348.00", "R-AGAIN-2")
		before = lastSeq(t, a)
		again := mustSend(t, a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-AGAIN-1"))
		require.Equal(t, http.StatusOK, again.Status, "%s", again.Raw)
		require.Equal(t, paymentID(t, first), paymentID(t, again))
		require.Equal(t, before, lastSeq(t, a))
		p := getPackage(t, a, id)
		require.Equal(t, "2448.00", p["paid"])
		require.Len(t, p["payments"].([]any), 2)
	})

	t.Run("same receipt and amount raced on the same package", func(t *testing.T) {
		id := sell(t, a, "OIL6")
		before := lastSeq(t, a)
		answers := race(t, 10, func(int) (answer, error) {
			return send(a, "POST", "/v1/packages/"+id+"/payments", csh, payBody("100.00", "R-SAME-RACE"))
		})
		created, ids := 0, map[string]bool{}
		for _, ans := range answers {
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, ans.Status, "%s", ans.Raw)
			if ans.Status == http.StatusCreated {
				created++
			}
			ids[paymentID(t, ans)] = true
		}
		require.Equal(t, 1, created)
		require.Len(t, ids, 1)
		require.Equal(t, before+2, lastSeq(t, a))
	})
}

// checkReceiptRace checks that of payments racing with one receipt on
// several packages exactly one landed and every other was refused as a
// duplicate receipt, and returns the winner's index.
func checkReceiptRace(t *testing.T, a *testAPI, answers []answer, ids []string, receipt string) int {
	t.Helper()
	winner := -1
	for i, ans := range answers {
		switch ans.Status {
		case http.StatusCreated:
			require.Equal(t, -1, winner, "receipt %s paid twice", receipt)
			winner = i
		case http.StatusConflict:
			code, field := requireErrorShape(t, ans)
			require.Equal(t, "duplicate_receipt", code, "%s", ans.Raw)
			require.Equal(t, "receipt", field)
		default:
			t.Fatalf("package %d: status %d: %s", i, ans.Status, ans.Raw)
		}
	}
	require.NotEqual(t, -1, winner, "no payment landed")
	for i, id := range ids {
		n := len(getPackage(t, a, id)["payments"].([]any))
		if i == winner {
			require.Equal(t, 1, n)
		} else {
			require.Zero(t, n, "the loser %d holds a payment", i)
		}
	}
	return winner
}
