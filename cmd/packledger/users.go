package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/handlers"
)

// newToken returns a fresh random bearer token.
func newToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the system's random source failing is not recoverable
	}
	return hex.EncodeToString(b)
}

// newUser prints a users-file entry with a fresh token's hash, and the
// token itself on stderr, so that `>> users.json` keeps only the hash.
func newUser(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("new-user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "user id (letters, digits, . _ : -)")
	name := fs.String("name", "", "the person's name")
	role := fs.String("role", "", "advisor, cashier, manager or auditor")
	store := fs.String("store", "", "the user's store (branch); empty: serve's --store")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	token := newToken()
	u := handlers.User{ID: *id, Name: *name, Role: domain.Role(*role), Store: *store, TokenSHA256: handlers.HashToken(token)}
	if err := handlers.CheckUsers([]handlers.User{u}); err != nil {
		return err
	}
	b, _ := json.Marshal(u)
	fmt.Fprintln(stdout, string(b))
	fmt.Fprintf(stderr, "token for %s (shown once, give it to the user): %s\n", u.ID, token)
	return nil
}

// demoUsers makes one user per role in store, with fresh tokens.
func demoUsers(store string) ([]handlers.User, map[domain.Role]string) {
	tokens := map[domain.Role]string{}
	var users []handlers.User
	for _, r := range []struct {
		role domain.Role
		name string
	}{
		{domain.RoleAdvisor, "Demo Advisor"}, {domain.RoleCashier, "Demo Cashier"},
		{domain.RoleManager, "Demo Manager"}, {domain.RoleAuditor, "Demo Auditor"},
	} {
		t := newToken()
		tokens[r.role] = t
		users = append(users, handlers.User{
			ID: "demo-" + string(r.role), Name: r.name, Role: r.role, Store: store, TokenSHA256: handlers.HashToken(t),
		})
	}
	return users, tokens
}
