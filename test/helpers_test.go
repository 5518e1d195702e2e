package test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// vin returns a 17-character VIN with a correct ISO 3779 / North American
// check digit (position 9) built from an 8-character prefix and an
// 8-character serial part.
func vin(t *testing.T, prefix, serial string) string {
	t.Helper()
	require.Len(t, prefix, 8)
	require.Len(t, serial, 8)
	v := []byte(prefix + "0" + serial)
	translit := func(c byte) int {
		switch {
		case c >= '0' && c <= '9':
			return int(c - '0')
		case c >= 'A' && c <= 'H':
			return int(c-'A') + 1
		case c >= 'J' && c <= 'N':
			return int(c-'J') + 1
		case c == 'P':
			return 7
		case c == 'R':
			return 9
		case c >= 'S' && c <= 'Z':
			return int(c-'S') + 2
		}
		t.Fatalf("%q is not a VIN character", c)
		return 0
	}
	weights := []int{8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i, c := range v {
		sum += translit(c) * weights[i]
	}
	if r := sum % 11; r == 10 {
		v[8] = 'X'
	} else {
		v[8] = byte('0' + r)
	}
	return string(v)
}

// shanghaiDay is the business day (Asia/Shanghai) of an instant.
func shanghaiDay(t *testing.T, at time.Time) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	y, m, d := at.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// str reads a string field of a decoded JSON object.
func str(t *testing.T, obj map[string]any, key string) string {
	t.Helper()
	require.NotNil(t, obj, "no object to read %q from", key)
	s, ok := obj[key].(string)
	require.True(t, ok, "%q is %T %v, not a string, in %v", key, obj[key], obj[key], obj)
	return s
}

// obj reads an object field of a decoded JSON object.
func obj(t *testing.T, o map[string]any, key string) map[string]any {
	t.Helper()
	require.NotNil(t, o, "no object to read %q from", key)
	m, ok := o[key].(map[string]any)
	require.True(t, ok, "%q is %T, not an object, in %v", key, o[key], o)
	return m
}

// arr reads an array field of a decoded JSON object.
func arr(t *testing.T, o map[string]any, key string) []any {
	t.Helper()
	require.NotNil(t, o, "no object to read %q from", key)
	a, ok := o[key].([]any)
	require.True(t, ok, "%q is %T, not an array, in %v", key, o[key], o)
	return a
}

// num reads a JSON number field (decoded with UseNumber) as an int.
func num(t *testing.T, o map[string]any, key string) int {
	t.Helper()
	require.NotNil(t, o, "no object to read %q from", key)
	var n int
	_, err := fmt.Sscan(fmt.Sprint(o[key]), &n)
	require.NoError(t, err, "%q is %v, not a whole number", key, o[key])
	return n
}

// q builds a query string.
func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return strings.ReplaceAll(url.PathEscape(s), "+", "%2B") }
