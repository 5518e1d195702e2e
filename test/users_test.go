package test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fileUser is one entry of a users file, with the token whose hash the
// file holds (the file itself never holds the token).
type fileUser struct {
	ID    string
	Name  string
	Role  string
	Store string
	Token string
}

// newFileUser makes a user with a fresh random token. Its id must not be
// one of serve --demo's own (demo-advisor, demo-cashier, …), which the
// server refuses as duplicates.
func newFileUser(t *testing.T, id, role string) fileUser {
	t.Helper()
	require.False(t, strings.HasPrefix(id, "demo-"), "user id %q would clash with serve --demo's users", id)
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return fileUser{ID: id, Name: "Test " + id, Role: role, Token: hex.EncodeToString(b)}
}

// writeUsersFile writes the users file of DESIGN.md §5: a JSON array of
// {id, name, role, store, token_sha256}, the hash as lowercase hex.
func writeUsersFile(t *testing.T, path string, users ...fileUser) {
	t.Helper()
	type entry struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Role        string `json:"role"`
		Store       string `json:"store,omitempty"`
		TokenSHA256 string `json:"token_sha256"`
	}
	list := make([]entry, 0, len(users))
	for _, u := range users {
		sum := sha256.Sum256([]byte(u.Token))
		list = append(list, entry{ID: u.ID, Name: u.Name, Role: u.Role, Store: u.Store, TokenSHA256: hex.EncodeToString(sum[:])})
	}
	b, err := json.MarshalIndent(list, "", "  ")
	require.NoError(t, err)
	writeFileAtomic(t, path, b)
}

// writeFileAtomic replaces path by a file holding b, as an operator's
// editor or config tool would: never half-written.
func writeFileAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// statusAs is one request with a token, reduced to its status.
func (p *proc) statusAs(token, method, path string, body any) int {
	p.t.Helper()
	status, _ := p.do(method, path, token, body)
	return status
}

// waitStderrCount polls the server's log until it holds n copies of s.
func (p *proc) waitStderrCount(s string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		if strings.Count(p.stderr.String(), s) >= n {
			return
		}
		if p.exited() {
			p.t.Fatalf("packledger exited (%v) before its log held %d× %q\nstderr:\n%s", p.waitErr, n, s, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("the log never held %d× %q within %s\nstderr:\n%s", n, s, readyTimeout, p.stderr)
}

// hup sends SIGHUP to the server: re-read the users file.
func (p *proc) hup() {
	p.t.Helper()
	p.requireRunning()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGHUP))
}

// TestUsers_ReloadOnSIGHUP runs the real binary on a users file, rewrites
// the file and sends SIGHUP: the removed user is refused from then on, the
// added one is let in with exactly its role's rights, and the demo users
// of this start stay. A broken file (not JSON, or an unknown role) changes
// nothing, not even in part: the server keeps its users, keeps running,
// logs why, and takes the next good file.
func TestUsers_ReloadOnSIGHUP(t *testing.T) {
	usersPath := filepath.Join(t.TempDir(), "users.json")
	userA := newFileUser(t, "hup-cashier-a", "cashier")
	userB := newFileUser(t, "hup-manager-b", "manager")
	userC := newFileUser(t, "hup-manager-c", "manager")
	writeUsersFile(t, usersPath, userA)

	srv := startServer(t, t.TempDir(), "--users", usersPath)
	srv.waitCaughtUp()

	// A package to aim the role checks at.
	pkg := srv.mustAs(http.StatusCreated, "advisor", http.MethodPost, "/v1/packages", map[string]any{
		"plan":     "OIL4",
		"customer": map[string]any{"id": "C-HUP-1", "name": "Zhou Min", "phone": "13700137000"},
		"vehicle":  map[string]any{"vin": vin(t, "LSVAU218", "N7100001"), "plate": "沪H10001", "model": "Passat"},
	})
	pkgID := str(t, pkg, "id")
	payPath := "/v1/packages/" + pkgID + "/payments"
	const managerPath = "/v1/reports/liability" // manager and auditor
	const anyPath = "/v1/plans"

	// A, a cashier, works as a cashier and only as one.
	require.Equal(t, http.StatusOK, srv.statusAs(userA.Token, http.MethodGet, anyPath, nil), "A before the reload")
	require.Equal(t, http.StatusOK, srv.statusAs(userA.Token, http.MethodGet, "/v1/reports/daily-close", nil), "A on the cashier's close")
	require.Equal(t, http.StatusForbidden, srv.statusAs(userA.Token, http.MethodGet, managerPath, nil), "A on a manager's report")
	require.Equal(t, http.StatusUnauthorized, srv.statusAs(userB.Token, http.MethodGet, anyPath, nil), "B before it is in the file")

	// Remove A, add B, change nothing else; SIGHUP.
	writeUsersFile(t, usersPath, userB)
	srv.hup()
	deadline := time.Now().Add(readyTimeout)
	status := 0
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		if status = srv.statusAs(userB.Token, http.MethodGet, anyPath, nil); status == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusUnauthorized, status, "B while the reload is pending")
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, http.StatusOK, status, "B's token never worked after SIGHUP within %s\nstderr:\n%s", readyTimeout, srv.stderr)
	srv.waitStderrCount("users file reloaded", 1)

	require.Equal(t, http.StatusUnauthorized, srv.statusAs(userA.Token, http.MethodGet, anyPath, nil), "A after it left the file")
	require.Equal(t, http.StatusUnauthorized, srv.statusAs(userA.Token, http.MethodPost, payPath,
		map[string]any{"amount": "100.00", "method": "cash", "receipt": "R-HUP-A"}), "A paying after it left the file")
	require.Equal(t, http.StatusOK, srv.statusAs(userB.Token, http.MethodGet, managerPath, nil), "B on a manager's report")
	require.Equal(t, http.StatusOK, srv.statusAs(userB.Token, http.MethodGet, "/v1/packages/"+pkgID+"/history", nil), "B on the history")
	require.Equal(t, http.StatusForbidden, srv.statusAs(userB.Token, http.MethodPost, payPath,
		map[string]any{"amount": "100.00", "method": "cash", "receipt": "R-HUP-B"}), "B, a manager, paying")
	// The demo users of this start stay: their tokens were printed.
	require.Equal(t, http.StatusOK, srv.statusAs(srv.token("manager"), http.MethodGet, managerPath, nil), "the demo manager after the reload")
	require.Equal(t, http.StatusOK, srv.statusAs(srv.token("cashier"), http.MethodGet, "/v1/reports/daily-close", nil), "the demo cashier after the reload")
	after := srv.mustAs(http.StatusOK, "manager", http.MethodGet, "/v1/packages/"+pkgID, nil)
	require.Empty(t, arr(t, after, "payments"), "a refused payment appends nothing")

	// Broken files: each names C, a new manager, beside B, so that a
	// partial reload would show as C getting in.
	broken := []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte(`[{"id": "hup-manager-c", "role": "manager", `)},
		{"unknown role", usersJSON(t, userB, userC, fileUser{ID: "hup-boss-d", Name: "D", Role: "owner", Token: "d-token"})},
		{"misspelt field", []byte(strings.Replace(string(usersJSON(t, userB, userC)), `"role"`, `"rolle"`, 1))},
	}
	for i, b := range broken {
		writeFileAtomic(t, usersPath, b.body)
		srv.hup()
		srv.waitStderrCount("users file not reloaded", i+1)
		srv.requireRunning()
		require.Equal(t, http.StatusOK, srv.statusAs(userB.Token, http.MethodGet, managerPath, nil), "%s: B keeps working", b.name)
		require.Equal(t, http.StatusUnauthorized, srv.statusAs(userC.Token, http.MethodGet, anyPath, nil), "%s: nothing of the file is taken", b.name)
		require.Equal(t, http.StatusUnauthorized, srv.statusAs(userA.Token, http.MethodGet, anyPath, nil), "%s: A stays out", b.name)
		require.Equal(t, http.StatusOK, srv.statusAs(srv.token("advisor"), http.MethodGet, anyPath, nil), "%s: the demo users stay", b.name)
	}
	require.Equal(t, 1, strings.Count(srv.stderr.String(), "users file reloaded"), "no broken file was reported as reloaded")
	t.Logf("after %d broken files the server kept its users; the log says:\n%s", len(broken), grepLines(srv.stderr.String(), "users file not reloaded"))

	// The next good file is taken.
	writeUsersFile(t, usersPath, userB, userC)
	srv.hup()
	srv.waitStderrCount("users file reloaded", 2)
	require.Equal(t, http.StatusOK, srv.statusAs(userC.Token, http.MethodGet, managerPath, nil), "C after a good file")
	require.Equal(t, http.StatusOK, srv.statusAs(userB.Token, http.MethodGet, managerPath, nil), "B after a good file")
	srv.Term()
}

// usersJSON is a users file's body.
func usersJSON(t *testing.T, users ...fileUser) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	writeUsersFile(t, path, users...)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUsers_SIGHUPRightAfterReady sends SIGHUP the moment the ready line
// is read: a server that says it is ready must already treat SIGHUP as
// "re-read the users file", not die of it (Go's default for SIGHUP). A
// few starts, since the window is short.
func TestUsers_SIGHUPRightAfterReady(t *testing.T) {
	usersPath := filepath.Join(t.TempDir(), "users.json")
	user := newFileUser(t, "hup-auditor-e", "auditor")
	writeUsersFile(t, usersPath, user)
	for i := 0; i < 3; i++ {
		srv := startServer(t, t.TempDir(), "--users", usersPath)
		srv.hup()
		srv.waitStderrCount("users file reloaded", 1)
		srv.requireRunning()
		require.Equal(t, http.StatusOK, srv.statusAs(user.Token, http.MethodGet, "/v1/audit/verify", nil), "start %d: the file's user after the reload", i)
		srv.Term()
	}
}
