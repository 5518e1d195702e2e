package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/packledger/packledger/domain"
)

// maxBody is the largest request body accepted (413 beyond).
const maxBody = 1 << 20

// decode reads a request body strictly: one JSON object of known fields,
// nothing after it, at most 1 MiB. Every failure is a domain error naming
// the field when the decoder knows it.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return domain.Errorf(domain.CodeBodyTooLarge, "the body is over %d bytes", maxBody)
		}
		return domain.Errorf(domain.CodeInvalidRequest, "could not read the body: %v", err)
	}
	if err := decodeBytes(body, dst); err != nil {
		return err
	}
	// The decoded form, re-encoded, ignores spacing and key order, so an
	// honest retry matches and a different request does not.
	canon, err := json.Marshal(dst)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	h.Write(canon)
	infoOf(r.Context()).digest = hex.EncodeToString(h.Sum(nil))
	return nil
}

func decodeBytes(body []byte, dst any) error {
	return decodeStrict(body, dst, json.Delim('{'), "the body")
}

// decodeStrict decodes one JSON value opening with top (an object or an
// array) into dst: valid UTF-8, lower-case snake_case keys unique at every
// depth, known fields only, nothing after it. Strings may hold no invalid
// UTF-8 and no raw control character; such a string is named by its JSON
// path ("customer.name", "models[1]"), once the rest of the value is known
// to be well formed. what names the input in messages ("the body").
func decodeStrict(body []byte, dst any, top json.Delim, what string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return domain.Errorf(domain.CodeInvalidRequest, "%s is empty; send a JSON %s", what, delimName(top))
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD and store
	// them; a ledger refuses what it cannot read back exactly. Inside a
	// string, the bad byte is replaced in a copy so that the structure can
	// be judged first, then the string is named.
	clean, fault, err := cleanStrings(body, what)
	if err != nil {
		return err
	}
	w := &walker{fault: fault.at}
	if err := w.check(clean, top, what); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(clean))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return jsonError(withIndexedField(clean, err))
	}
	if _, err := d.Token(); err != io.EOF {
		return domain.Errorf(domain.CodeInvalidRequest, "%s must hold one JSON value and nothing after it", what)
	}
	if fault.at >= 0 {
		return fault.err(w)
	}
	return nil
}

func delimName(d json.Delim) string {
	if d == '[' {
		return "array"
	}
	return "object"
}

// stringFault is the first byte inside a JSON string that no field may
// hold: a byte of invalid UTF-8, or a raw control character (which JSON
// itself forbids in a string).
type stringFault struct {
	at      int  // offset in the body; -1: none
	control byte // the control character; 0: invalid UTF-8
}

func (f stringFault) err(w *walker) error {
	msg := "is not valid UTF-8"
	if f.control != 0 {
		msg = fmt.Sprintf("must not contain control characters (a raw U+%04X)", f.control)
	}
	switch {
	case w.faultPath == "":
		return domain.Errorf(domain.CodeInvalidRequest, "a string at byte %d %s", f.at, msg)
	case w.faultInKey:
		return domain.FieldErrorf(domain.CodeInvalidRequest, w.faultPath, "a key here %s", msg)
	}
	return domain.FieldErrorf(domain.CodeInvalidField, w.faultPath, "%s", msg)
}

// cleanStrings finds the bytes inside strings that no field may hold and
// returns a copy of body with each replaced by '?', and the first of them.
// Invalid UTF-8 outside any string is malformed JSON: an error.
func cleanStrings(body []byte, what string) ([]byte, stringFault, error) {
	first := stringFault{at: -1}
	clean := body
	mark := func(i int, control byte) {
		if first.at < 0 {
			first = stringFault{at: i, control: control}
			clean = bytes.Clone(body)
		}
		clean[i] = '?'
	}
	in := false
	for i := 0; i < len(body); {
		c := body[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n == 1 {
				if !in {
					return nil, first, domain.Errorf(domain.CodeInvalidRequest, "%s is not valid UTF-8 (byte %d)", what, i)
				}
				mark(i, 0)
			}
			i += n
			continue
		}
		switch {
		case c == '"':
			in = !in
		case in && c == '\\' && i+1 < len(body) && body[i+1] < utf8.RuneSelf:
			i++ // the escaped byte; a control character there is malformed JSON
		case in && c < 0x20:
			mark(i, c)
		}
		i++
	}
	return clean, first, nil
}

// walker checks the keys of a JSON value and finds the path of the string
// holding a fault.
type walker struct {
	d          *json.Decoder
	fault      int // offset of a stringFault; -1: none
	faultPath  string
	faultInKey bool
}

// check requires one JSON value opening with top whose keys, at every
// depth, are lower-case snake_case and unique. encoding/json matches keys
// without regard to case and keeps the last of two equal keys, so
// {"amount":"1.00", "amount":"2448.00"} would be read one way here and
// maybe another way by a proxy or an auditor's parser.
func (w *walker) check(body []byte, top json.Delim, what string) error {
	w.d = json.NewDecoder(bytes.NewReader(body))
	tok, err := w.d.Token()
	if err != nil {
		return jsonError(err)
	}
	if tok != top {
		return domain.Errorf(domain.CodeInvalidRequest, "%s must be a JSON %s", what, delimName(top))
	}
	if top == '[' {
		return w.array("")
	}
	return w.object("")
}

// token reads the next token and notes whether it holds the fault.
func (w *walker) token(path string, key bool) (json.Token, error) {
	start := w.d.InputOffset()
	tok, err := w.d.Token()
	if err == nil && w.faultPath == "" && w.fault >= 0 && int64(w.fault) >= start && int64(w.fault) < w.d.InputOffset() {
		w.faultPath, w.faultInKey = path, key
		if path == "" {
			w.faultPath = "(top)"
		}
	}
	return tok, err
}

// object checks the keys of an object whose '{' was just read.
func (w *walker) object(path string) error {
	seen := map[string]bool{}
	for w.d.More() {
		tok, err := w.token(path, true)
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		field := key
		if path != "" {
			field = path + "." + key
		}
		if !snakeKey(key) {
			if len(key) > maxKeyBytes {
				field = path // a field is named by a path a person can read
			}
			return domain.FieldErrorf(domain.CodeInvalidRequest, field, "unknown field %q", truncateText(key, 40))
		}
		if seen[key] {
			return domain.FieldErrorf(domain.CodeInvalidRequest, field, "the key %q appears twice", key)
		}
		seen[key] = true
		if err := w.value(field); err != nil {
			return err
		}
	}
	_, err := w.d.Token() // '}'
	if err != nil {
		return jsonError(err)
	}
	return nil
}

// array checks the elements of an array whose '[' was just read.
func (w *walker) array(path string) error {
	for i := 0; w.d.More(); i++ {
		if err := w.value(path + "[" + strconv.Itoa(i) + "]"); err != nil {
			return err
		}
	}
	_, err := w.d.Token() // ']'
	if err != nil {
		return jsonError(err)
	}
	return nil
}

func (w *walker) value(path string) error {
	tok, err := w.token(path, false)
	if err != nil {
		return jsonError(err)
	}
	switch tok {
	case json.Delim('{'):
		return w.object(path)
	case json.Delim('['):
		return w.array(path)
	}
	return nil
}

// maxKeyBytes bounds a key: no field's name is longer.
const maxKeyBytes = 64

func snakeKey(k string) bool {
	if k == "" || len(k) > maxKeyBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// withIndexedField names the value of a type error by its JSON path:
// encoding/json names it by its fields alone ("entitlements.list_price"),
// which does not say which element of an array. The value is the first at
// a path of those fields that fails to decode as the type.
func withIndexedField(body []byte, err error) error {
	var typ *json.UnmarshalTypeError
	if !errors.As(err, &typ) || typ.Field == "" || typ.Type == nil {
		return err
	}
	var found string
	v := &valueWalk{d: json.NewDecoder(bytes.NewReader(body)), body: body, visit: func(path string, raw []byte) bool {
		if stripIndexes(path) != typ.Field {
			return false
		}
		if json.Unmarshal(raw, reflect.New(typ.Type).Interface()) != nil {
			found = path
			return true
		}
		return false
	}}
	if v.value("") != nil || found == "" || found == typ.Field {
		return err
	}
	c := *typ
	c.Field = found
	return &c
}

// stripIndexes drops the array indexes of a JSON path: "a[1].b" → "a.b".
func stripIndexes(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// valueWalk visits every value of a JSON document, with its path and raw
// bytes, until visit returns true.
type valueWalk struct {
	d     *json.Decoder
	body  []byte
	visit func(path string, raw []byte) bool
	done  bool
}

func (v *valueWalk) value(path string) error {
	start := v.d.InputOffset()
	tok, err := v.d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		for v.d.More() && !v.done {
			k, err := v.d.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if path != "" {
				key = path + "." + key
			}
			if err := v.value(key); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; v.d.More() && !v.done; i++ {
			if err := v.value(path + "[" + strconv.Itoa(i) + "]"); err != nil {
				return err
			}
		}
	}
	if v.done {
		return nil
	}
	if _, ok := tok.(json.Delim); ok {
		if _, err := v.d.Token(); err != nil { // the closing '}' or ']'
			return err
		}
	}
	raw := bytes.TrimLeft(v.body[start:v.d.InputOffset()], " \t\r\n:,")
	if path != "" && v.visit(path, raw) {
		v.done = true
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		de     *domain.Error
	)
	switch {
	case errors.As(err, &typ) && typ.Type == domain.MoneyType:
		return domain.FieldErrorf(domain.CodeInvalidAmount, typ.Field,
			"must be a string with digits, a point and exactly two decimals, like \"480.00\"; got %s", typ.Value)
	case errors.As(err, &typ) && typ.Type == domain.RateType:
		return domain.FieldErrorf(domain.CodeInvalidField, typ.Field,
			"must be a string between \"0\" and \"1\" with at most four decimals, like \"0.85\"; got %s", typ.Value)
	case errors.As(err, &typ):
		return domain.FieldErrorf(domain.CodeInvalidRequest, typ.Field, "must be %s, not %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &syntax):
		return domain.Errorf(domain.CodeInvalidRequest, "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &de):
		return de
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.CodeInvalidRequest, "malformed JSON: the body ends too soon")
	}
	// Unknown fields and the like: the decoder's text is clear enough.
	return domain.Errorf(domain.CodeInvalidRequest, "%v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64":
		return "a whole number"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	return fmt.Sprintf("a %s", kind)
}

// writeJSON answers with v as compact JSON, in one write with its length.
// Not indented: indenting a package's view cost as much as encoding it,
// on every answer; tools such as jq show it to people.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a value of a kind JSON cannot hold, a bug: say so plainly.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the answer could not be encoded"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
