package strictjson_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packledger/packledger/internal/strictjson"
)

// The test types use every kind of read the package offers, the way the
// ledger's types do.

// code is a fixed-size array read from text, as uuid.UUID is.
type code [3]byte

func (c *code) UnmarshalText(b []byte) error {
	if len(b) != 6 {
		return errors.New("code: not six hex digits")
	}
	_, err := hex.Decode(c[:], b)
	return err
}

// cents reads only a string of digits, as domain.Money reads only its
// written form, and fails as it does.
type cents int64

func (c *cents) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err == nil {
		var n int64
		if n, err = strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			*c = cents(n)
			return nil
		}
	}
	return &json.UnmarshalTypeError{Value: "JSON " + string(b), Type: reflect.TypeFor[cents]()}
}

type role string

type inner struct {
	A  int    `json:"a"`
	S  string `json:"s,omitempty"`
	Ce cents  `json:"ce"`
}

type sample struct {
	S       string          `json:"s"`
	N       int             `json:"n"`
	Role    role            `json:"role"`
	In      inner           `json:"in"`
	P       *inner          `json:"p,omitempty"`
	L       []inner         `json:"l"`
	SL      []string        `json:"sl"`
	T       time.Time       `json:"t"`
	Code    code            `json:"code"`
	Ce      cents           `json:"ce"`
	PCe     *cents          `json:"pce"`
	Raw     json.RawMessage `json:"raw"`
	Name    string
	Ignored string `json:"-"`
	hidden  string //nolint:unused // a field encoding/json does not see
}

var (
	sampleStruct = strictjson.StructOf[sample]()
	innerStruct  = strictjson.StructOf[inner]()
)

func readInner(r *strictjson.Reader, in *inner) {
	for f := r.Object(innerStruct); f.Next(); {
		switch f.Name() {
		case "a":
			strictjson.Int(r, &in.A)
		case "s":
			strictjson.String(r, &in.S)
		case "ce":
			r.Unmarshal(in.Ce.UnmarshalJSON)
		}
	}
}

func readSample(r *strictjson.Reader, s *sample) {
	for f := r.Object(sampleStruct); f.Next(); {
		switch f.Name() {
		case "s":
			strictjson.String(r, &s.S)
		case "n":
			strictjson.Int(r, &s.N)
		case "role":
			strictjson.String(r, &s.Role)
		case "in":
			readInner(r, &s.In)
		case "p":
			if strictjson.Pointer(r, &s.P) {
				readInner(r, s.P)
			}
		case "l":
			for e := strictjson.Slice(r, &s.L); e.Next(); {
				readInner(r, e.Elem())
			}
		case "sl":
			for e := strictjson.Slice(r, &s.SL); e.Next(); {
				strictjson.String(r, e.Elem())
			}
		case "t":
			r.Unmarshal(s.T.UnmarshalJSON)
		case "code":
			strictjson.Text[code](r, s.Code.UnmarshalText)
		case "ce":
			r.Unmarshal(s.Ce.UnmarshalJSON)
		case "pce":
			if strictjson.Pointer(r, &s.PCe) {
				r.Unmarshal(s.PCe.UnmarshalJSON)
			}
		case "raw":
			s.Raw = r.Raw()
		case "Name":
			strictjson.String(r, &s.Name)
		}
	}
}

// decodeOracle is what the Reader stands in for: a strict Decoder, and
// an error of its own for anything after the value.
func decodeOracle(b []byte, s *sample) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(s); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("trailing data")

func decodeReader(b []byte, s *sample) error {
	r := strictjson.NewReader(b)
	readSample(&r, s)
	if err := r.Err(); err != nil {
		return err
	}
	if r.More() {
		return errTrailing
	}
	return nil
}

// prefill is what a value already holds when the data is read into it:
// encoding/json reads into it, so null and merges show through.
func prefill() sample {
	ce := cents(7)
	return sample{S: "old", N: 9, In: inner{A: 1, S: "in"}, P: &inner{A: 2}, L: []inner{{A: 3}, {A: 4}}, SL: []string{"x"}, PCe: &ce, Code: code{1, 2, 3}}
}

// agree fails the test unless the Reader and encoding/json agree on b,
// read into both a zero and a prefilled value.
func agree(t *testing.T, b []byte) {
	t.Helper()
	for _, start := range []sample{{}, prefill()} {
		want, got := start, start
		if start.P != nil {
			// Each gets its own copies of what the pointers point to.
			want.P, got.P = new(inner), new(inner)
			*want.P, *got.P = *start.P, *start.P
			want.PCe, got.PCe = new(cents), new(cents)
			*want.PCe, *got.PCe = *start.PCe, *start.PCe
			want.L, got.L = append([]inner(nil), start.L...), append([]inner(nil), start.L...)
			want.SL, got.SL = append([]string(nil), start.SL...), append([]string(nil), start.SL...)
		}
		werr := decodeOracle(b, &want)
		gerr := decodeReader(b, &got)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q:\n got error %v\nwant error %v", b, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
		}
	}
}

var cases = []string{
	// what is written
	`{"s":"a","n":1,"role":"r","in":{"a":2,"s":"b","ce":"3"},"p":{"a":4},"l":[{"a":5},{"ce":"6"}],"sl":["x","y"],"t":"2026-01-31T10:30:00+08:00","code":"0a0b0c","ce":"12","pce":"13","raw":{"any": [1, "thing"]},"Name":"n"}`,
	`{}`, ` { } `, "\t\r\n{\"s\" : \"a\" }\n",
	// keys: exact first, else without regard to case; escapes read first
	`{"S":"a"}`, `{"NAME":"n"}`, `{"name":"n"}`, `{"\u0073":"a"}`, `{"RoLe":"r"}`, `{"ſ":"a"}`, `{"\u017f":"a"}`, `{"K":1}`,
	`{"Ignored":"x"}`, `{"hidden":"x"}`, `{"-":"x"}`, `{"":1}`, `{"x":1}`, `{"x":{"y":[1,2,{"z":null}]}}`,
	// keys twice: scalars replaced, objects merged, arrays read into what is there
	`{"s":"a","s":"b"}`, `{"in":{"a":1},"in":{"s":"x"}}`, `{"p":{"a":1},"p":{"s":"x"}}`, `{"p":{"a":1},"p":null,"p":{"s":"x"}}`,
	`{"l":[{"a":1},{"a":2},{"a":3}],"l":[{"s":"x"}],"l":[{},{},{},{}]}`, `{"l":[{"a":1}],"l":[],"l":[{}]}`,
	`{"sl":["a","b"],"sl":[null,null,null]}`, `{"sl":["a","b","c"],"sl":["d"],"sl":[null,null,null]}`,
	`{"raw":1,"raw":[2]}`, `{"pce":"1","pce":"2"}`,
	// null everywhere
	`null`, `{"s":null,"n":null,"role":null,"in":null,"p":null,"l":null,"sl":null,"t":null,"code":null,"raw":null,"Name":null}`,
	`{"ce":null}`, `{"pce":null}`, `{"l":[null]}`, `{"in":{"ce":null}}`,
	// type errors, and which is reported
	`{"s":1}`, `{"s":true}`, `{"s":{}}`, `{"s":[]}`, `{"n":"1"}`, `{"n":1.0}`, `{"n":1e2}`, `{"n":-0}`, `{"n":9223372036854775807}`,
	`{"n":9223372036854775808}`, `{"n":-9223372036854775809}`, `{"n":true}`, `{"n":[1]}`, `{"role":2}`,
	`{"in":1}`, `{"in":"x"}`, `{"in":[]}`, `{"in":{"a":"x"}}`, `{"p":1}`, `{"p":[1]}`, `{"p":{"a":"x"}}`, `{"l":{}}`, `{"l":"x"}`, `{"l":[1]}`,
	`{"l":[{"a":"x"}]}`, `{"sl":[1]}`, `{"sl":"x"}`, `{"t":1}`, `{"t":"x"}`, `{"t":"2026-01-31T10:30:00\u002b08:00"}`, `{"t":{}}`,
	`{"code":1}`, `{"code":true}`, `{"code":[]}`, `{"code":{}}`, `{"code":"x"}`, `{"code":"\u0030a0b0c"}`, `{"code":"0a0b0g"}`,
	`{"ce":1}`, `{"ce":"-1"}`, `{"ce":[]}`, `{"pce":1}`, `{"in":{"ce":1}}`, `{"l":[{"ce":"x"}]}`,
	`{"x":1,"s":1}`, `{"s":1,"x":1}`, `{"s":1,"ce":1}`, `{"ce":1,"s":1}`, `{"ce":1,"x":1}`, `{"ce":1,"ce":"x"}`, `{"ce":1,"t":1}`,
	`{"ce":1,"s":tru}`, `{"x":1,"y":2}`, `1`, `"x"`, `true`, `[]`, `[1]`,
	// strings
	`{"s":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`, `{"s":"\ud800"}`, `{"s":"\udc00\ud800x"}`, "{\"s\":\"\xff\xfe\"}", "{\"s\":\"\xed\xa0\x80\"}",
	"{\"s\":\"é李\"}", "{\"s\":\"\x7f\"}", "{\"s\":\"\x01\"}", `{"s":"\x"}`, `{"s":"\u12"}`, `{"s":"\u12g4"}`, `{"s":"`, `{"s":"\`,
	// invalid JSON, and after the value
	``, ` `, `{`, `{"s"`, `{"s":`, `{"s":"a"`, `{"s":"a",}`, `{"s":"a" "n":1}`, `{"s" "a"}`, `{s:1}`, `{"s":nul}`, `{"s":nulll}`,
	`{"n":01}`, `{"n":-}`, `{"n":1.}`, `{"n":.1}`, `{"n":1e}`, `{"n":1e+}`, `{"n":+1}`, `{"n":0x1}`, `{"x":[1,]}`, `{"x":[,1]}`,
	`{"x":[1 2]}`, `{"x":{"a"}}`, `{"x":{"a":1,}}`, `{"x":tRue}`, `{} x`, `{}x`, `{}}`, `{} {}`, `null x`, `nullx`, `1x`, `1 x`, `"x"y`,
	`[]]`, "{}\x00", `{"s":"a"}` + "\u00a0", `]`, `}`, `,`, `nul`, `n`,
	`{"raw":}`, `{"raw":[1,}`, `{"ce":"1"`, `{"ce":{"a":}}`,
}

func TestReader_AgreesWithEncodingJSON(t *testing.T) {
	for _, c := range cases {
		agree(t, []byte(c))
	}
}

func TestReader_Depth(t *testing.T) {
	for _, n := range []int{9998, 9999, 10000, 10001} {
		b := []byte(`{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
		agree(t, b)
		b = []byte(`{"raw":` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + `}`)
		agree(t, b)
	}
}

// TestReader_ErrorMessages pins the messages the ledger's callers show.
func TestReader_ErrorMessages(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"x":1}`, `json: unknown field "x"`},
		{`{"s":1}`, `json: cannot unmarshal number into Go struct field sample.s of type string`},
		{`{"l":[{"a":"1"}]}`, `json: cannot unmarshal string into Go struct field inner.l.a of type int`},
		{`{"in":{"ce":1}}`, `json: cannot unmarshal JSON 1 into Go struct field inner.in.ce of type strictjson_test.cents`},
		{`{"n":1.5}`, `json: cannot unmarshal number 1.5 into Go struct field sample.n of type int`},
		{`1`, `json: cannot unmarshal number into Go value of type strictjson_test.sample`},
		{`not json`, `invalid character 'o' in literal null (expecting 'u')`},
		{`{"s":"a"`, `unexpected EOF`},
		{``, `EOF`},
		{`{} x`, `trailing data`},
	} {
		var s sample
		err := decodeReader([]byte(c.in), &s)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: got error %v, want %s", c.in, err, c.want)
		}
	}
}

func TestReader_RawSharesTheData(t *testing.T) {
	b := []byte(`{"raw": {"a": 1} }`)
	var s sample
	if err := decodeReader(b, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Raw) != `{"a": 1}` || &s.Raw[0] != &b[8] || cap(s.Raw) != len(s.Raw) {
		t.Fatalf("raw %q (cap %d) is not the data's own bytes", s.Raw, cap(s.Raw))
	}
}

func TestStructOf_Names(t *testing.T) {
	got := strictjson.StructOf[sample]().Names()
	want := []string{"s", "n", "role", "in", "p", "l", "sl", "t", "code", "ce", "pce", "raw", "Name"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	for name, f := range map[string]func(){
		"not a struct": func() { strictjson.StructOf[int]() },
		"embedded":     func() { strictjson.StructOf[struct{ inner }]() },
		",string": func() {
			strictjson.StructOf[struct {
				N int `json:"n,string"`
			}]()
		},
		"twice": func() {
			strictjson.StructOf[struct {
				A int
				B int `json:"A"`
			}]()
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("StructOf of a struct with %s does not panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzReader holds the Reader to encoding/json on arbitrary bytes.
func FuzzReader(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { agree(t, b) })
}
