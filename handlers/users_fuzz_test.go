package handlers_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/handlers"
)

var (
	userID    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	tokenHash = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

const hashA, hashB = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

// FuzzParseUsers: the users file decides who may do what, so what it
// grants must be what any reader of it sees. An accepted file is one JSON
// array; each user has an id, a known role, a lowercase hex hash, a name
// and a store within their rules, ids and hashes unique; a case-sensitive
// reader that keeps every key sees exactly these values and no other key;
// and the users written back read the same.
func FuzzParseUsers(f *testing.F) {
	for _, s := range []string{
		`[{"id":"u-manager","name":"Wang Fang","role":"manager","store":"s1","token_sha256":"` + hashA + `"}]`,
		`[{"id":"u1","name":"李伟","role":"advisor","token_sha256":"` + hashA + `"},{"id":"u2","name":"","role":"auditor","store":"hq","token_sha256":"` + hashB + `"}]`,
		`[]`, `null`, `{}`, ``, `[{}]`, `[null]`,
		`[{"id":"u1","role":"cashier","token_sha256":"` + hashA + `"}] [{"id":"u2","role":"manager","token_sha256":"` + hashB + `"}]`,
		`[{"id":"u1","role":"cashier","role":"manager","token_sha256":"` + hashA + `"}]`,
		`[{"id":"u1","role":"Manager","token_sha256":"` + hashA + `"}]`,
		`[{"id":"u1","role":"system","token_sha256":"` + hashA + `"}]`,
		`[{"id":"u1","name":"a\u202eb","role":"cashier","store":"s 1","token_sha256":"` + hashA + `"}]`,
		`[{"id":"u1","role":"cashier","token_sha256":"` + hashA + `"},{"id":"u1","role":"manager","token_sha256":"` + hashB + `"}]`,
		`[{"id":"u1","role":"cashier","token":"secret","token_sha256":"` + hashA + `"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := handlers.ParseUsers(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted %q, which is not one JSON value", b)
		}
		ids, hashes := map[string]bool{}, map[string]bool{}
		for i, u := range users {
			switch {
			case !userID.MatchString(u.ID):
				t.Fatalf("%q: user %d has id %q", b, i, u.ID)
			case u.Role != domain.RoleAdvisor && u.Role != domain.RoleCashier && u.Role != domain.RoleManager && u.Role != domain.RoleAuditor:
				t.Fatalf("%q: user %s has role %q", b, u.ID, u.Role)
			case !tokenHash.MatchString(u.TokenSHA256):
				t.Fatalf("%q: user %s has hash %q", b, u.ID, u.TokenSHA256)
			case u.Store != "" && !userID.MatchString(u.Store):
				t.Fatalf("%q: user %s has store %q", b, u.ID, u.Store)
			case ids[u.ID] || hashes[u.TokenSHA256]:
				t.Fatalf("%q: user %s is not unique", b, u.ID)
			}
			if _, err := domain.CheckText("name", u.Name, 0, 100); err != nil {
				t.Fatalf("%q: user %s has name %q: %v", b, u.ID, u.Name, err)
			}
			ids[u.ID], hashes[u.TokenSHA256] = true, true
		}
		var seen []map[string]any
		if err := json.Unmarshal(b, &seen); err != nil || len(seen) != len(users) {
			t.Fatalf("%q: a plain reader finds %d users, not %d: %v", b, len(seen), len(users), err)
		}
		for i, m := range seen {
			u := users[i]
			want := map[string]string{"id": u.ID, "name": u.Name, "role": string(u.Role), "store": u.Store, "token_sha256": u.TokenSHA256}
			for k, v := range m {
				w, known := want[k]
				if s, _ := v.(string); !known || s != w {
					t.Fatalf("%q: a plain reader sees %q: %v for user %d, which was read as %+v", b, k, v, i, u)
				}
			}
		}
		out, err := json.Marshal(users)
		if err != nil {
			t.Fatal(err)
		}
		back, err := handlers.ParseUsers(out)
		if err != nil || !reflect.DeepEqual(back, users) {
			t.Fatalf("%q: written back as %s it reads %+v, %v", b, out, back, err)
		}
	})
}

func TestParseUsers(t *testing.T) {
	ok := `[{"id":"u1","name":"李伟","role":"manager","store":"s1","token_sha256":"` + hashA + `"}]`
	users, err := handlers.ParseUsers([]byte(ok))
	if err != nil || len(users) != 1 || users[0].Role != domain.RoleManager {
		t.Fatalf("ParseUsers(%s) = %+v, %v", ok, users, err)
	}
	for name, b := range map[string]string{
		"mixed-case key":       `[{"id":"u1","roLe":"manager","token_sha256":"` + hashA + `"}]`,
		"a key twice":          `[{"id":"u1","role":"cashier","role":"manager","token_sha256":"` + hashA + `"}]`,
		"trailing data":        `[{"id":"u1","role":"cashier","token_sha256":"` + hashA + `"}] [{"id":"u2","role":"manager","token_sha256":"` + hashB + `"}]`,
		"an object":            `{"id":"u1","role":"cashier","token_sha256":"` + hashA + `"}`,
		"store with a space":   `[{"id":"u1","role":"cashier","store":"s 1","token_sha256":"` + hashA + `"}]`,
		"store invalid UTF-8":  "[{\"id\":\"u1\",\"role\":\"cashier\",\"store\":\"\xe4\",\"token_sha256\":\"" + hashA + "\"}]",
		"name with a control":  `[{"id":"u1","name":"a\u0007b","role":"cashier","token_sha256":"` + hashA + `"}]`,
		"name with a bidi":     `[{"id":"u1","name":"a\u202eb","role":"cashier","token_sha256":"` + hashA + `"}]`,
		"the plain token kept": `[{"id":"u1","role":"cashier","token":"secret","token_sha256":"` + hashA + `"}]`,
	} {
		if users, err := handlers.ParseUsers([]byte(b)); err == nil {
			t.Errorf("%s: accepted %+v", name, users)
		}
	}
}
