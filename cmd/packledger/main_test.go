package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRun_ServeDemo starts the whole program in process on free loopback
// ports, checks it answers, and stops it as SIGINT would.
func TestRun_ServeDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "--demo", "--data", t.TempDir(),
			"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	tokens := map[string]string{}
	var httpURL string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			tokens[k] = v
		}
		if rest, ok := strings.CutPrefix(line, "ready http="); ok {
			httpURL, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	require.NotEmpty(t, httpURL, "no ready line")
	require.Len(t, tokens, 5, "PL and one token per role")

	req, _ := http.NewRequest("GET", httpURL+"/v1/plans", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["ADVISOR"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body struct {
		Plans []struct{ Code, Price string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	prices := map[string]string{}
	for _, p := range body.Plans {
		prices[p.Code] = p.Price
	}
	require.Equal(t, map[string]string{"OIL4": "1632.00", "OIL6": "2448.00", "OIL10": "4080.00"}, prices)

	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestRun_Usage(t *testing.T) {
	var out strings.Builder
	require.ErrorIs(t, run(context.Background(), nil, &out, &out), errUsage)
	require.ErrorIs(t, run(context.Background(), []string{"nope"}, &out, &out), errUsage)
	require.Error(t, run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, io.Discard, io.Discard), "no users")
}
