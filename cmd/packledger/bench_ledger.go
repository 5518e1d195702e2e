package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// The ledger's write scenarios: redemptions on distinct packages through
// the HTTP API as serve wires it, and through the Go API.

// visitsPerPackage is what the write scenarios' plan, OIL10, holds.
const visitsPerPackage = 10

// httpRedeem serves the API on a loopback port as serve does and measures
// 64 clients redeeming at once, then one client alone.
func (b *benchRun) httpRedeem(ctx context.Context) ([]benchResult, error) {
	node, c, done, err := b.freshNode(ctx, "http")
	if err != nil {
		return nil, err
	}
	defer done()
	tz, err := time.LoadLocation(c.tz)
	if err != nil {
		return nil, err
	}
	// From an empty model, as a first start: no checkpoint.
	runner, stopRunner, err := node.startProjections(ctx, tz, b.log, nil)
	if err != nil {
		return nil, err
	}
	defer stopRunner()
	users, tokens := demoUsers(c.store)
	api := node.api(c, tz, b.log, runner, users)
	if _, err := seedDemoPlans(ctx, node.store, c.store, time.Now); err != nil {
		return nil, err
	}
	sz := b.sz
	many := packagesFor(sz.httpCount, sz.clients)
	one := packagesFor(sz.singleCount, 1)
	ids, last, err := activePackages(ctx, node.store, many*sz.clients+one)
	if err != nil {
		return nil, fmt.Errorf("set up packages: %w", err)
	}
	if err := waitFor(ctx, runner.WaitFor, last); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := newHTTPServer(api.Handler(), b.log)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 2 * sz.clients, DisableCompression: true,
	}}
	defer hc.CloseIdleConnections()
	redeem := httpRedeemer(hc, "http://"+ln.Addr().String(), tokens[domain.RoleAdvisor])

	b.progress("durable_http_redeem_64: %d clients on %d packages each, for %v", sz.clients, many, sz.httpTime)
	run, err := runLoad(ctx, split(ids[:many*sz.clients], sz.clients), sz.httpTime, redeem)
	if err != nil {
		return nil, fmt.Errorf("durable_http_redeem_64: %w", err)
	}
	r64 := loadResult("durable_http_redeem_64", run, sz.clients, "64 HTTP clients over loopback, each redeeming the visits of its own packages, every write fsynced")
	r64.RatioTo, r64.RatioBatchTo = "ceiling_fsync_single", "ceiling_atomic_batch"

	b.progress("single_client_http_redeem: for %v", sz.singleTime)
	run, err = runLoad(ctx, split(ids[many*sz.clients:], 1), sz.singleTime, redeem)
	if err != nil {
		return nil, fmt.Errorf("single_client_http_redeem: %w", err)
	}
	r1 := loadResult("single_client_http_redeem", run, 1, "one HTTP client, one redemption after another, every write fsynced")
	r1.RatioTo = "ceiling_fsync_single"
	return []benchResult{r64, r1}, nil
}

// durableAPI measures Store.Update from many goroutines, each redeeming
// the visits of its own packages, decided by the domain as the API does.
func (b *benchRun) durableAPI(ctx context.Context) ([]benchResult, error) {
	node, c, done, err := b.freshNode(ctx, "api")
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := seedDemoPlans(ctx, node.store, c.store, time.Now); err != nil {
		return nil, err
	}
	sz := b.sz
	per := packagesFor(sz.apiCount, sz.apiWorkers)
	ids, _, err := activePackages(ctx, node.store, per*sz.apiWorkers)
	if err != nil {
		return nil, fmt.Errorf("set up packages: %w", err)
	}
	b.progress("durable_api: %d goroutines on %d packages each, for %v", sz.apiWorkers, per, sz.apiTime)
	run, err := runLoad(ctx, split(ids, sz.apiWorkers), sz.apiTime, func(ctx context.Context, id, repairOrder string) error {
		res, err := node.store.Update(ctx, node.store.Subjects().Package(id), redeemMeta(repairOrder), time.Now, redeemVisit(repairOrder))
		if err == nil && len(res.Appended) != 1 {
			err = fmt.Errorf("redemption %s on %s appended %d events", repairOrder, id, len(res.Appended))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("durable_api: %w", err)
	}
	r := loadResult("durable_api", run, sz.apiWorkers, "eventstore.Store.Update from many goroutines, each on its own packages, every write fsynced")
	r.RatioTo = "ceiling_atomic_batch"
	return []benchResult{r}, nil
}

// httpRedeemer posts one redemption as a till does, with an
// Idempotency-Key, and wants 201.
func httpRedeemer(hc *http.Client, base, token string) func(ctx context.Context, id, repairOrder string) error {
	return func(ctx context.Context, id, repairOrder string) error {
		body := []byte(`{"service":"oil_change","repair_order":"` + repairOrder + `","mileage":12000}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/packages/"+id+"/redemptions", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", uuid.NewString())
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST redemption on %s: %d %s", id, resp.StatusCode, answer)
		}
		return nil
	}
}

// packagesFor is how many packages each of clients needs for count
// redemptions between them (at least one each).
func packagesFor(count, clients int) int {
	return max(1, (count+clients*visitsPerPackage-1)/(clients*visitsPerPackage))
}

// split deals ids out to n clients, in runs of equal length.
func split(ids []string, n int) [][]string {
	out := make([][]string, n)
	per := len(ids) / n
	for i := range out {
		out[i] = ids[i*per : (i+1)*per]
	}
	return out
}

// runLoad runs one client per group, each redeeming every visit of its
// packages in turn with op, until d has passed or its packages are used
// up. Any failed operation fails the load: a refusal here is a bug, not a
// figure.
func runLoad(ctx context.Context, groups [][]string, d time.Duration, op func(ctx context.Context, id, repairOrder string) error) (loadRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		run  loadRun
		errs []error
	)
	start := time.Now()
	deadline := start.Add(d)
	for c, ids := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make(latencies, 0, len(ids)*visitsPerPackage)
			defer func() {
				mu.Lock()
				run.lat = append(run.lat, lat...)
				mu.Unlock()
			}()
			for _, id := range ids {
				for v := 0; v < visitsPerPackage; v++ {
					if time.Now().After(deadline) || ctx.Err() != nil {
						return
					}
					t0 := time.Now()
					if err := op(ctx, id, fmt.Sprintf("RO-%d-%s-%d", c, id[24:], v)); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						cancel()
						return
					}
					lat = append(lat, time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	run.elapsed = time.Since(start)
	run.ops = len(run.lat)
	if err := errors.Join(errs...); err != nil {
		return loadRun{}, err
	}
	return run, nil
}

// loadResult is a load's figures.
func loadResult(name string, run loadRun, clients int, note string) benchResult {
	r := benchResult{Name: name, OpsPerS: opsRate(run.ops, run.elapsed), Ops: run.ops, Clients: clients,
		Seconds: round(run.elapsed.Seconds(), 2), Note: note}
	run.lat.set(&r)
	return r
}

// waitFor waits, for at most a minute, on a runner's WaitFor.
func waitFor(ctx context.Context, wait func(context.Context, uint64) error, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return wait(ctx, seq)
}
