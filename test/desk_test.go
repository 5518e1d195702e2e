package test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDesk_RealBinary: the real program serves the web desk at / on the
// same port as the API: a browser is sent to sign in, signs in with the
// advisor's printed token and lands on the vehicle search, in Chinese,
// with the embedded stylesheet.
func TestDesk_RealBinary(t *testing.T) {
	srv := startServer(t, t.TempDir())
	srv.waitCaughtUp()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		resp, err := client.Get(srv.HTTP + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	st, page := get("/")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, page, `<html lang="zh-CN">`)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, csrf, page)

	resp, err := client.PostForm(srv.HTTP+"/signin", url.Values{"csrf": {csrf[1]}, "token": {srv.Tokens["ADVISOR"]}})
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "/desk/find", resp.Request.URL.Path, "followed to the advisor's start")
	require.Contains(t, string(b), "查找车辆")

	st, css := get("/desk/static/desk.css")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, css, "--accent")
}
