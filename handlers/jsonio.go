package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

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
	return decodeBytes(body, dst)
}

func decodeBytes(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return domain.Errorf(domain.CodeInvalidRequest, "the body is empty; send a JSON object")
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
