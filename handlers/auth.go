package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/packledger/packledger/domain"
)

// User is one entry of the users file. The file holds only the SHA-256 of
// each token, so a copy of it does not let anyone sign in.
type User struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Role        domain.Role `json:"role"`
	Store       string      `json:"store,omitempty"`
	TokenSHA256 string      `json:"token_sha256"`
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// LoadUsers reads and checks a users file.
func LoadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	users, err := ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return users, nil
}

// ParseUsers reads and checks the bytes of a users file, as strictly as a
// request body: the file grants roles, so what it grants must be what
// anyone reading it sees. One JSON array and nothing after it, valid
// UTF-8, known keys written exactly ("roLe" would be read as "role" by
// encoding/json, and by nobody else), each key once.
func ParseUsers(b []byte) ([]User, error) {
	var users []User
	if err := decodeStrict(b, &users, json.Delim('['), "the users file"); err != nil {
		return nil, err
	}
	return users, CheckUsers(users)
}

// CheckUsers validates users: ids, known roles, lowercase hex hashes, ids
// and hashes unique, names and stores within their rules (a store is
// written into every event the user causes).
func CheckUsers(users []User) error {
	ids, hashes := map[string]bool{}, map[string]bool{}
	for i, u := range users {
		if err := domain.CheckID("id", u.ID); err != nil {
			return fmt.Errorf("user %d: %w", i, err)
		}
		if _, err := domain.CheckText("name", u.Name, 0, 100); err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		if u.Store != "" {
			if err := domain.CheckID("store", u.Store); err != nil {
				return fmt.Errorf("user %s: %w", u.ID, err)
			}
		}
		switch u.Role {
		case domain.RoleAdvisor, domain.RoleCashier, domain.RoleManager, domain.RoleAuditor:
		default:
			return fmt.Errorf("user %s: unknown role %q", u.ID, u.Role)
		}
		if !hexHash.MatchString(u.TokenSHA256) {
			return fmt.Errorf("user %s: token_sha256 must be 64 lowercase hex digits", u.ID)
		}
		if ids[u.ID] || hashes[u.TokenSHA256] {
			return fmt.Errorf("user %s: duplicate id or token", u.ID)
		}
		ids[u.ID], hashes[u.TokenSHA256] = true, true
	}
	return nil
}

// HashToken is the users file's form of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// authenticate finds the user of the request's bearer token. Every user's
// hash is compared in constant time, so the time taken does not tell how
// close a guess was.
func (s *Server) authenticate(r *http.Request) (User, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return User{}, domain.Errorf(domain.CodeUnauthorized, "send Authorization: Bearer <token>")
	}
	return s.userByToken(token)
}

// userByToken finds the user whose token this is: the API's bearer token,
// the desk's sign-in.
func (s *Server) userByToken(token string) (User, error) {
	sum := sha256.Sum256([]byte(token))
	var found User
	match := 0
	for _, u := range s.users() {
		want, _ := hex.DecodeString(u.TokenSHA256)
		if subtle.ConstantTimeCompare(sum[:], want) == 1 {
			found, match = u, 1
		}
	}
	if match == 0 {
		return User{}, domain.Errorf(domain.CodeUnauthorized, "the token is not valid")
	}
	if found.Store == "" {
		found.Store = s.cfg.DefaultStore
	}
	return found, nil
}

type infoKey struct{}

// requestInfo is what the middleware and the decoder learn of a request.
type requestInfo struct {
	user User
	// digest identifies the request (method, path, decoded body) for its
	// idempotency key; set by decode.
	digest string
}

func infoOf(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

func userOf(ctx context.Context) User { return infoOf(ctx).user }

// withUser is ctx of a request by u, as allow makes it.
func withUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, infoKey{}, &requestInfo{user: u})
}

// allow wraps a handler with authentication and the role matrix: only the
// listed roles get through (401 without a valid token, 403 for a role not
// listed).
func (s *Server) allow(h http.HandlerFunc, roles ...domain.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		permitted := false
		for _, role := range roles {
			if u.Role == role {
				permitted = true
			}
		}
		if !permitted {
			s.writeError(w, r, domain.Errorf(domain.CodeForbidden, "a %s may not do this", u.Role))
			return
		}
		h(w, r.WithContext(withUser(r.Context(), u)))
	}
}

// Role sets of the matrix in DESIGN.md §1 and §5.
var (
	anyRole      = []domain.Role{domain.RoleAdvisor, domain.RoleCashier, domain.RoleManager, domain.RoleAuditor}
	managerOnly  = []domain.Role{domain.RoleManager}
	advisorOnly  = []domain.Role{domain.RoleAdvisor}
	cashierOnly  = []domain.Role{domain.RoleCashier}
	auditorOnly  = []domain.Role{domain.RoleAuditor}
	historyRoles = []domain.Role{domain.RoleManager, domain.RoleAuditor}
	closeRoles   = []domain.Role{domain.RoleCashier, domain.RoleManager, domain.RoleAuditor}
)
