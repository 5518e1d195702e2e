package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckpoint_Restart: a clean stop of the real binary writes a
// checkpoint of the read models, and the next start resumes from it
// (/healthz says from which sequence) with every answer as before; after
// a later SIGKILL, a start resumes from that same checkpoint and replays
// the rest. Both starts read the checkpoint from its copy in the data dir
// (preloaded, while NATS starts); a damaged copy is passed over for the
// same checkpoint in NATS. With --checkpoints=false a start reads the
// whole log.
func TestCheckpoint_Restart(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir)
	srv.waitCaughtUp()
	var ids []string
	for i := range 6 {
		p := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
			"plan":     "OIL4",
			"customer": map[string]any{"id": fmt.Sprintf("C-%d", i%3), "name": "Wang Fang", "phone": "13800138000"},
			"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", fmt.Sprintf("N218329%d", i)), "plate": fmt.Sprintf("沪A1234%d", i), "model": "Lavida"},
		}, "Idempotency-Key", fmt.Sprintf("sale-%d", i))
		id := str(t, p, "id")
		ids = append(ids, id)
		srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+id+"/payments",
			map[string]any{"amount": "1632.00", "method": "wechat", "receipt": fmt.Sprintf("R-CK-%d", i)})
		for k := range i % 4 {
			srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+id+"/redemptions",
				map[string]any{"service": "oil_change", "repair_order": fmt.Sprintf("RO-%d-%d", i, k), "mileage": 1000 * k})
		}
	}
	srv.mustAs(http.StatusOK, "manager", http.MethodPost, "/v1/packages/"+ids[5]+"/refund", map[string]any{"method": "cash", "reason": "moved"})
	answers := func(p *proc) string {
		var out []any
		for _, id := range ids {
			out = append(out, p.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/packages/"+id, nil))
		}
		for _, path := range []string{"/v1/accounts/C-0", "/v1/accounts/C-2", "/v1/packages?customer=C-1",
			"/v1/reports/liability?from=2000-01-01&to=2100-01-01", "/v1/plans"} {
			out = append(out, p.mustAs(http.StatusOK, "auditor", http.MethodGet, path, nil))
		}
		b, err := json.Marshal(out)
		require.NoError(t, err)
		return string(b)
	}
	before := answers(srv)
	applied := num(t, obj(t, srv.waitCaughtUp(), "projections"), "applied_seq")
	srv.Term()
	require.Contains(t, srv.stderr.String(), "checkpoint written")

	srv = startServer(t, dataDir)
	proj := obj(t, srv.waitCaughtUp(), "projections")
	ck := obj(t, proj, "checkpoint")
	require.Equal(t, applied, num(t, ck, "seq"), "resumed after the checkpoint of the clean stop; stderr:\n%s", srv.stderr)
	require.NotEmpty(t, str(t, ck, "name"))
	require.Equal(t, true, ck["preloaded"], "read from its local copy; stderr:\n%s", srv.stderr)
	require.Contains(t, srv.stderr.String(), "resumed from preloaded checkpoint")
	require.Equal(t, before, answers(srv))

	// One more write, then SIGKILL: no checkpoint of it.
	srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages/"+ids[0]+"/redemptions",
		map[string]any{"service": "oil_change", "repair_order": "RO-after", "mileage": 9000})
	after := answers(srv)
	srv.Kill()

	srv = startServer(t, dataDir)
	proj = obj(t, srv.waitCaughtUp(), "projections")
	ck = obj(t, proj, "checkpoint")
	require.Equal(t, applied, num(t, ck, "seq"), "the same checkpoint, and the rest replayed")
	require.Equal(t, true, ck["preloaded"])
	require.Equal(t, after, answers(srv))
	applied = num(t, proj, "applied_seq")
	srv.Term()

	// A copy damaged on disk: the same checkpoint, from NATS.
	copyFile := filepath.Join(dataDir, "checkpoint.LEDGER.demo")
	b, err := os.ReadFile(copyFile)
	require.NoError(t, err)
	b[len(b)-100] ^= 0x01
	require.NoError(t, os.WriteFile(copyFile, b, 0o600))
	srv = startServer(t, dataDir)
	proj = obj(t, srv.waitCaughtUp(), "projections")
	ck = obj(t, proj, "checkpoint")
	require.Equal(t, applied, num(t, ck, "seq"), "stderr:\n%s", srv.stderr)
	require.Nil(t, ck["preloaded"])
	require.Contains(t, fmt.Sprint(ck["ignored"]), "is not the one its header names")
	require.Contains(t, srv.stderr.String(), "resumed from checkpoint")
	require.Equal(t, after, answers(srv))
	srv.Term()

	srv = startServer(t, dataDir, "--checkpoints=false")
	proj = obj(t, srv.waitCaughtUp(), "projections")
	_, has := proj["checkpoint"]
	require.False(t, has, "no checkpoints: nothing said of them")
	require.Equal(t, after, answers(srv))
	srv.Term()
}
