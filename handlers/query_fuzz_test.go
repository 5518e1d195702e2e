package handlers

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/packledger/packledger/domain"
)

// The query decoders, fuzzed on raw query strings as a client sends them.
// url.ParseQuery is what r.URL.Query() does, keeping what it can read.

var shanghai = func() *time.Location {
	tz, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return tz
}()

// queryRefusal checks that err is a field error of code on one of fields.
func queryRefusal(t *testing.T, raw string, err error, code string, fields ...string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%q: %T %v, not a domain error", raw, err, err)
	}
	if de.Code != code {
		t.Fatalf("%q: code %q, want %q: %v", raw, de.Code, code, err)
	}
	for _, f := range fields {
		if de.Field == f {
			return
		}
	}
	t.Fatalf("%q: refused on field %q, want one of %q: %v", raw, de.Field, fields, err)
}

// writtenBack checks that an instant can be written in JSON and RFC 3339
// and read back as the same instant.
func writtenBack(t *testing.T, raw, what string, at time.Time) {
	t.Helper()
	b, err := json.Marshal(at)
	var back time.Time
	if err == nil {
		err = json.Unmarshal(b, &back)
	}
	if err != nil || !back.Equal(at) {
		t.Fatalf("%q: %s %v cannot be written back in JSON: %s %v", raw, what, at, b, err)
	}
	if p, err := time.Parse(time.RFC3339Nano, at.Format(time.RFC3339Nano)); err != nil || !p.Equal(at) {
		t.Fatalf("%q: %s %v cannot be written back in RFC 3339: %v", raw, what, at, err)
	}
}

// FuzzReportQuery: an accepted liability report query is a period that
// ends after it starts, at most maxReportDays long by day, whose bounds
// can be written in JSON and sent again, as RFC 3339 instants, for the
// same period. A refusal names from, to or by.
func FuzzReportQuery(f *testing.F) {
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, shanghai).Unix()
	for _, raw := range []string{
		"", "from=2026-01-01&to=2026-01-31", "from=2026-01-01&to=2026-01-31&by=day", "by=day", "by=week", "by=DAY",
		"from=2026-01-01T00:00:00%2B08:00&to=2026-02-01T00:00:00Z", "from=2026-01-01T00:00:00.123456789Z",
		"from=2026-02-30", "from=2026-1-1", "to=2026-01-01&from=2026-01-01", "from=2027-01-01", "from=1999-01-01&to=2030-01-01&by=day",
		"from=2026-01-01T24:00:00Z", "from=+2026-01-01", "from=2026-01-01&from=2025-01-01", "from=%ff", "to=2026-13-01", "from=x;to=y",
	} {
		f.Add(raw, now)
	}
	f.Fuzz(func(t *testing.T, raw string, unix int64) {
		now := time.Unix(1_700_000_000+unix%2_000_000_000, 0) // 2023 to 2087
		q, _ := url.ParseQuery(raw)
		rq, err := parseReportQuery(q, now, shanghai)
		if err != nil {
			queryRefusal(t, raw, err, domain.CodeInvalidField, "from", "to", "by")
			return
		}
		if !rq.from.Before(rq.to) {
			t.Fatalf("%q: a period from %v to %v", raw, rq.from, rq.to)
		}
		if rq.byDay && rq.to.Sub(rq.from) > maxReportDays*24*time.Hour {
			t.Fatalf("%q: %v by day", raw, rq.to.Sub(rq.from))
		}
		writtenBack(t, raw, "from", rq.from)
		writtenBack(t, raw, "to", rq.to)
		again := url.Values{"from": {rq.from.Format(time.RFC3339Nano)}, "to": {rq.to.Format(time.RFC3339Nano)}}
		if rq.byDay {
			again.Set("by", "day")
		}
		rq2, err := parseReportQuery(again, now, shanghai)
		if err != nil || !rq2.from.Equal(rq.from) || !rq2.to.Equal(rq.to) || rq2.byDay != rq.byDay {
			t.Fatalf("%q: its period sent again as %q reads %v to %v: %v", raw, again.Encode(), rq2.from, rq2.to, err)
		}
	})
}

// FuzzAsOf: an accepted as_of instant can be written back in JSON and RFC
// 3339 as the same instant; a refusal names as_of.
func FuzzAsOf(f *testing.F) {
	for _, s := range []string{
		"2026-01-31T10:30:00+08:00", "2026-01-31T10:30:00.123456789Z", "2026-01-31T10:30:00Z", "2026-01-31", "2026-01-31T10:30:00",
		"9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59", "2026-01-31t10:30:00z", "2026-01-31T10:30:00+0800", "", " ",
		"2026-02-29T00:00:00Z", "2026-01-31T10:30:60Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, err := parseAsOf(s)
		if err != nil {
			queryRefusal(t, s, err, domain.CodeInvalidField, "as_of")
			return
		}
		writtenBack(t, s, "as_of", at)
	})
}

// FuzzFindQuery: an accepted package search looks up only values that
// obey their field's rule (a VIN of the VIN alphabet, a plate, a customer
// id), a known status and a limit from 1 to maxFind, and reads the same
// when sent again in its normalized form. A refusal names the parameter.
func FuzzFindQuery(f *testing.F) {
	for _, raw := range []string{
		"", "vin=LSVAU2180N2183294", "vin=lsvau2180n2183294", "vin=LSVAU2180N218329I", "vin=L%C5%BFVAU2180N2183294", "vin=%20",
		"plate=%E6%B2%AAA12345", "plate=A", "plate=" + url.QueryEscape("沪A\x0712345"), "plate=AAAAAAAAAAAAA", "plate=%ff%fe",
		"customer=C-1001", "customer=C%201", "customer=" + url.QueryEscape("李伟"),
		"status=active", "status=ACTIVE", "status=used_up&limit=5", "limit=0", "limit=1000", "limit=1001", "limit=+5", "limit=05",
		"limit=-0", "limit=9223372036854775808", "vin=LSVAU2180N2183294&vin=X", "plate=%E2%80%AEA1",
	} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		fq, err := parseFindQuery(q)
		if err != nil {
			queryRefusal(t, raw, err, domain.CodeInvalidField, "vin", "plate", "customer", "status", "limit")
			return
		}
		if fq.limit < 1 || fq.limit > maxFind {
			t.Fatalf("%q: limit %d", raw, fq.limit)
		}
		if fq.VIN != "" {
			if v, err := domain.NormalizeVIN(fq.VIN); err != nil || v != fq.VIN {
				t.Fatalf("%q: looks up VIN %q", raw, fq.VIN)
			}
		}
		if fq.Plate != "" {
			if p, err := domain.CheckText("plate", fq.Plate, 2, domain.MaxPlate); err != nil || p != fq.Plate {
				t.Fatalf("%q: looks up plate %q", raw, fq.Plate)
			}
		}
		if fq.Customer != "" && domain.CheckID("customer", fq.Customer) != nil {
			t.Fatalf("%q: looks up customer %q", raw, fq.Customer)
		}
		again := url.Values{"limit": {strconv.Itoa(fq.limit)}}
		for k, v := range map[string]string{"vin": fq.VIN, "plate": fq.Plate, "customer": fq.Customer, "status": string(fq.status)} {
			if v != "" {
				again.Set(k, v)
			}
		}
		fq2, err := parseFindQuery(again)
		if err != nil || fq2 != fq {
			t.Fatalf("%q: sent again as %q it reads %+v, not %+v: %v", raw, again.Encode(), fq2, fq, err)
		}
	})
}

// FuzzCloseQuery: an accepted daily close is of a real date and of a
// store that is an id, or every store; a cashier's is their own store's.
// A refusal names date or store, or is a cashier's forbidden look at
// another store.
func FuzzCloseQuery(f *testing.F) {
	for _, raw := range []string{
		"", "date=2026-11-02", "date=2026-02-29", "date=2026-02-30", "date=26-11-02", "date=2026-11-02T00:00:00Z", "date=0000-01-01",
		"store=s1", "store=s2", "store=s%201", "store=" + url.QueryEscape("\u202es1"), "date=2026-11-02&store=s1&store=s2",
	} {
		f.Add(raw, uint8(0))
		f.Add(raw, uint8(1))
	}
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, shanghai)
	f.Fuzz(func(t *testing.T, raw string, role uint8) {
		u := User{ID: "u-manager", Role: domain.RoleManager, Store: "s1"}
		if role%2 == 1 {
			u = User{ID: "u-cashier", Role: domain.RoleCashier, Store: "s1"}
		}
		q, _ := url.ParseQuery(raw)
		date, store, err := parseCloseQuery(q, u, now)
		if err != nil {
			if domain.ErrorCode(err) == domain.CodeForbidden && u.Role == domain.RoleCashier {
				return
			}
			queryRefusal(t, raw, err, domain.CodeInvalidField, "date", "store")
			return
		}
		if domain.CheckDate("date", date) != nil {
			t.Fatalf("%q: a close of %q", raw, date)
		}
		if store != "" && domain.CheckID("store", store) != nil {
			t.Fatalf("%q: a close of store %q", raw, store)
		}
		if u.Role == domain.RoleCashier && store != u.Store {
			t.Fatalf("%q: a cashier of %s reads the close of %q", raw, u.Store, store)
		}
	})
}

// FuzzPathID: an id in a path ({id}, {pid}, {rid}) that is accepted names
// one thing in one way: it is the canonical form of the UUID it parses to,
// so that two spellings of a path never reach one package (the digest of
// an idempotent request covers the path as written). A refusal is the
// not-found code given.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{
		"0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d", "0193A0B4-7F6E-7C3A-9D2B-5E8F1A2B3C4D", "0193a0b47f6e7c3a9d2b5e8f1a2b3c4d",
		"{0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d}", "urn:uuid:0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d", "00000000-0000-0000-0000-000000000000",
		"not-a-uuid", "", "0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4", "0193a0b4-7f6e-7c3a-9d2b-5e8f1a2b3c4d0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID(s, domain.CodePackageNotFound, "package")
		if err != nil {
			if domain.ErrorCode(err) != domain.CodePackageNotFound {
				t.Fatalf("parseID(%q): %v", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("parseID(%q) accepted another spelling of %s", s, id)
		}
	})
}
