package domain

import (
	"errors"
	"fmt"
)

// Error codes are stable: clients and the README rely on them, and the
// handlers map each to one HTTP status. Add, never rename.
const (
	// Malformed input (400).
	CodeInvalidRequest = "invalid_request" // bad JSON, unknown field, trailing data
	CodeInvalidAmount  = "invalid_amount"  // money not of the form "480.00", or not positive
	CodeInvalidField   = "invalid_field"   // any other field that fails its rule

	CodeUnauthorized = "unauthorized"   // 401
	CodeForbidden    = "forbidden"      // 403
	CodeBodyTooLarge = "body_too_large" // 413

	// Not found (404).
	CodeNotFound           = "not_found"
	CodePlanNotFound       = "plan_not_found"
	CodePackageNotFound    = "package_not_found"
	CodePaymentNotFound    = "payment_not_found"
	CodeRedemptionNotFound = "redemption_not_found"

	// State conflicts (409).
	CodePlanExists          = "plan_exists"
	CodePlanRetired         = "plan_retired"
	CodePackageNotActive    = "package_not_active"
	CodeNoVisitsLeft        = "no_visits_left"
	CodeDuplicateReceipt    = "duplicate_receipt"
	CodePaymentVoided       = "payment_already_voided"
	CodeVisitsRedeemed      = "visits_redeemed"
	CodeRedemptionReversed  = "redemption_already_reversed"
	CodePackageUsedUp       = "package_used_up"
	CodePackageNotExpired   = "package_not_expired"
	CodeBreakageRecognized  = "breakage_already_recognized"
	CodeConcurrentUpdate    = "concurrent_update"
	CodeIdempotencyConflict = "idempotency_key_reused"

	// Well-formed but against a rule (422).
	CodeOverpayment      = "overpayment"
	CodeUnknownService   = "unknown_service"
	CodeModelNotCovered  = "model_not_covered"
	CodeNothingToRecover = "nothing_to_recognize"

	// Ours, not the caller's.
	CodeUnavailable = "unavailable" // 503: the event store did not confirm, or the read models are behind
	// CodeUnreachable: NATS cannot be reached, or no JetStream server
	// took the write (a stream without a leader), so this attempt wrote
	// nothing; a retry with the same Idempotency-Key is always safe.
	CodeUnreachable = "ledger_unreachable" // 503
	CodeInternal    = "internal"           // 500
)

// Error is the one error type that reaches a user. Code is stable and
// machine-readable; Message is for a person; Field, when set, names the input
// field at fault so a form can show the message next to it.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns a domain error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns a domain error about one input field.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the domain error in err's chain, or
// CodeInternal for anything else, so that raw store or decoder errors never
// reach a user as if they were rules.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the person-readable message of the domain error in
// err's chain, or a generic message for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}

// withField returns a copy of err naming field, when err is a domain error
// that names none yet; callers validating nested values use it to report
// "customer.phone" rather than "phone".
func withField(err error, field string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	if c.Field == "" {
		c.Field = field
	} else {
		c.Field = field + "." + c.Field
	}
	return &c
}
