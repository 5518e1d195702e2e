package handlers

import (
	"io/fs"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// TestDesk_EveryWordTranslated: every key a page asks the catalog for is
// in it, in both languages.
func TestDesk_EveryWordTranslated(t *testing.T) {
	for key, w := range words {
		require.NotEmpty(t, w[0], "%s has no Chinese", key)
		require.NotEmpty(t, w[1], "%s has no English", key)
	}
	used := regexp.MustCompile(`\.T "([a-z_.]+)"`)
	n := 0
	err := fs.WalkDir(deskFiles, "desk", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(deskFiles, path)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			n++
			require.Contains(t, words, m[1], "%s asks for %q", path, m[1])
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, n, 50, "the pattern finds the pages' keys")
	for _, r := range []domain.Role{domain.RoleAdvisor, domain.RoleCashier, domain.RoleManager, domain.RoleAuditor} {
		require.Contains(t, words, "role."+string(r))
	}
	for _, st := range []domain.Status{domain.StatusAwaitingPayment, domain.StatusActive, domain.StatusUsedUp, domain.StatusExpired, domain.StatusRefunded} {
		require.Contains(t, words, "status."+string(st))
	}
}

// TestDesk_EveryErrorInWords: every error the API can answer has words
// a cashier reads, in both languages, so that none reaches a page as the
// API's English message.
func TestDesk_EveryErrorInWords(t *testing.T) {
	for code := range statusOf {
		if code == domain.CodePackageNotFound {
			continue // "err.nopackage"
		}
		require.Contains(t, words, "err."+code, "code %s", code)
	}
}

// TestYuan: amounts as a dealer's papers write them.
func TestYuan(t *testing.T) {
	for in, want := range map[string]string{
		"0.00": "¥0.00", "5.10": "¥5.10", "408.00": "¥408.00", "2448.00": "¥2,448.00",
		"123456.78": "¥123,456.78", "1000000.00": "¥1,000,000.00",
	} {
		require.Equal(t, want, yuan(domain.MustMoney(in)), in)
	}
	// A difference may be negative.
	require.Equal(t, "-¥1,234.56", yuan(domain.MustMoney("0.00").Sub(domain.MustMoney("1234.56"))))
}

// TestLocalPath: only a path of this site is gone back to; what a browser
// would read as another site is refused.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/desk/find":                "/desk/find",
		"/desk/find?q=%E6%B2%AAA1":  "/desk/find?q=%E6%B2%AAA1",
		"/desk/packages/x/contract": "/desk/packages/x/contract",
		"":                          "",
		"desk/find":                 "",
		"//evil.example":            "",
		"/\t/evil.example/x":        "",
		"/\v/evil.example":          "",
		"/\\evil.example":           "",
		"/\r\n/evil.example":        "",
		"https://evil.example/":     "",
		"/%09/evil.example":         "/%09/evil.example", // stays a path: the browser does not decode it
		"///evil.example":           "",
		"/\x7f/evil":                "",
	} {
		require.Equal(t, want, localPath(in), "%q", in)
	}
}
