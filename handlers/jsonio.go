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
	"strconv"
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
	if len(bytes.TrimSpace(body)) == 0 {
		return domain.Errorf(domain.CodeInvalidRequest, "the body is empty; send a JSON object")
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD and store
	// them; a ledger refuses what it cannot read back exactly.
	if !utf8.Valid(body) {
		return domain.Errorf(domain.CodeInvalidRequest, "the body is not valid UTF-8")
	}
	if err := checkKeys(body); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return domain.Errorf(domain.CodeInvalidRequest, "the body must hold one JSON value and nothing after it")
	}
	return nil
}

// checkKeys requires one JSON object whose keys, at every depth, are
// lower-case snake_case and unique. encoding/json matches keys without
// regard to case and keeps the last of two equal keys, so {"amount":"1.00",
// "amount":"2448.00"} would be read one way here and maybe another way by a
// proxy or an auditor's parser.
func checkKeys(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	tok, err := d.Token()
	if err != nil {
		return jsonError(err)
	}
	if tok != json.Delim('{') {
		return domain.Errorf(domain.CodeInvalidRequest, "the body must be a JSON object")
	}
	return walkObject(d, "")
}

// walkObject checks the keys of an object whose '{' was just read.
func walkObject(d *json.Decoder, path string) error {
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		field := key
		if path != "" {
			field = path + "." + key
		}
		if !snakeKey(key) {
			return domain.FieldErrorf(domain.CodeInvalidRequest, field, "unknown field %q", truncateText(key, 40))
		}
		if seen[key] {
			return domain.FieldErrorf(domain.CodeInvalidRequest, field, "the key %q appears twice", key)
		}
		seen[key] = true
		if err := walkValue(d, field); err != nil {
			return err
		}
	}
	_, err := d.Token() // '}'
	if err != nil {
		return jsonError(err)
	}
	return nil
}

func walkValue(d *json.Decoder, path string) error {
	tok, err := d.Token()
	if err != nil {
		return jsonError(err)
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(d, path)
	case json.Delim('['):
		for i := 0; d.More(); i++ {
			if err := walkValue(d, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err := d.Token() // ']'
		if err != nil {
			return jsonError(err)
		}
	}
	return nil
}

func snakeKey(k string) bool {
	if k == "" || len(k) > 64 {
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
