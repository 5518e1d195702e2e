package test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestE2E_StoredByteChanged changes one byte of a stored event in the
// stream's own files while the server is stopped. JetStream no longer
// yields that message; verify --data names its sequence (and the
// package's next event, now off its chain) and exits non-zero, and the
// restarted server never counts the changed payment.
func TestE2E_StoredByteChanged(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	sale := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL4",
		"customer": map[string]any{"id": "C-T1", "name": "Tamper", "phone": "13800000000"},
		"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", "N2183294"), "plate": "沪T0001", "model": "Lavida"},
	})
	id := sale["id"].(string)
	first := srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+id+"/payments",
		map[string]any{"amount": "123.45", "method": "cash", "receipt": "R-T1"})
	paySeq := int(num(t, first["package"].(map[string]any), "seq"))
	srv.mustAs(http.StatusCreated, "cashier", http.MethodPost, "/v1/packages/"+id+"/payments",
		map[string]any{"amount": "100.00", "method": "cash", "receipt": "R-T2"})
	srv.Term()

	blks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "LEDGER", "msgs", "*.blk"))
	require.NoError(t, err)
	require.NotEmpty(t, blks)
	changed := false
	for _, f := range blks {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		// The payment's own body (its receipt claim, stored just before it,
		// holds the amount too).
		if i := bytes.Index(b, []byte(`"amount":"123.45","method"`)); i >= 0 {
			b[i+len(`"amount":"`)] = '9' // 123.45 becomes 923.45
			require.NoError(t, os.WriteFile(f, b, 0o600))
			changed = true
			break
		}
	}
	require.True(t, changed, "the payment's body is in the stream's files")

	out, err := exec.Command(binPath, "verify", "--data", dir).Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "verify must fail: %s", out)
	require.Contains(t, string(out), "seq "+strconv.Itoa(paySeq)+": stored message "+strconv.Itoa(paySeq)+" is missing or unreadable", "%s", out)
	require.Contains(t, string(out), "package "+id+": foreign event", "the next payment is off the chain: %s", out)

	// A start that reads the whole log counts neither. One that resumes
	// from the checkpoint its clean stop wrote trusts what the checkpoint
	// covers (its last event is unchanged) and shows the balances as they
	// were; the auditor's check of the log against the live projections
	// names the difference.
	again := startServer(t, dir)
	again.waitCaughtUp()
	audit := again.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/audit/verify", nil)
	require.Equal(t, false, audit["ok"], "verify against the live projections: %v", audit)
	require.Contains(t, fmt.Sprint(audit["findings"]), "live projection", "%v", audit)
	again.Term()

	again = startServer(t, dir, "--checkpoints=false")
	again.waitCaughtUp()
	p := again.mustAs(http.StatusOK, "auditor", http.MethodGet, "/v1/packages/"+id, nil)
	require.Equal(t, "0.00", p["paid"], "neither the changed payment nor the one chained to it is money")
	again.Term()
}
