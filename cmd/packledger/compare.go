package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
	"github.com/packledger/packledger/projections/audit"
)

// compareLive checks a live server's read models against the
// recomputation: every package the log holds, as the server's API answers
// for it. A package the server changed after the log was read (seq beyond
// upTo) is passed over; it was not comparable at the instant read.
func compareLive(ctx context.Context, server, token string, v *audit.Verifier, upTo uint64) error {
	if token == "" {
		token = os.Getenv("PACKLEDGER_TOKEN")
	}
	if token == "" {
		return fmt.Errorf("--server needs --token or PACKLEDGER_TOKEN")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	server = strings.TrimRight(server, "/")
	for _, p := range v.Model().Find(projections.Query{}) {
		live, found, err := getPackage(ctx, client, server, token, p.ID.String())
		if err != nil {
			return err
		}
		switch {
		case !found:
			v.Note(p.Seq, "", fmt.Sprintf("package %s is in the log but the server does not know it", p.ID))
		case live.Seq > upTo:
		case live.Seq != p.Seq || live.Status != p.Status || !live.Balances().Equal(p.Balances()):
			v.Note(p.Seq, "", fmt.Sprintf("package %s: the server shows seq %d, %s, liability %s; the log gives seq %d, %s, liability %s",
				p.ID, live.Seq, live.Status, live.Liability, p.Seq, p.Status, p.Liability))
		}
	}
	return nil
}

func getPackage(ctx context.Context, client *http.Client, server, token, id string) (domain.Package, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/packages/"+id, nil)
	if err != nil {
		return domain.Package{}, false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return domain.Package{}, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return domain.Package{}, false, nil
	default:
		return domain.Package{}, false, fmt.Errorf("GET /v1/packages/%s: %s", id, resp.Status)
	}
	var p domain.Package
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return domain.Package{}, false, fmt.Errorf("GET /v1/packages/%s: %w", id, err)
	}
	return p, true, nil
}
