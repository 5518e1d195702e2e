package handlers

import (
	"errors"
	"net/http"

	"github.com/packledger/packledger/domain"
)

// statusOf maps every domain error code to its HTTP status. A code missing
// here is a bug that TestErrorCodes_AllMapped catches.
var statusOf = map[string]int{
	domain.CodeInvalidRequest: http.StatusBadRequest,
	domain.CodeInvalidAmount:  http.StatusBadRequest,
	domain.CodeInvalidField:   http.StatusBadRequest,

	domain.CodeUnauthorized: http.StatusUnauthorized,
	domain.CodeForbidden:    http.StatusForbidden,
	domain.CodeBodyTooLarge: http.StatusRequestEntityTooLarge,

	domain.CodeNotFound:           http.StatusNotFound,
	domain.CodePlanNotFound:       http.StatusNotFound,
	domain.CodePackageNotFound:    http.StatusNotFound,
	domain.CodePaymentNotFound:    http.StatusNotFound,
	domain.CodeRedemptionNotFound: http.StatusNotFound,

	domain.CodePlanExists:          http.StatusConflict,
	domain.CodePlanRetired:         http.StatusConflict,
	domain.CodePackageNotActive:    http.StatusConflict,
	domain.CodeNoVisitsLeft:        http.StatusConflict,
	domain.CodeDuplicateReceipt:    http.StatusConflict,
	domain.CodePaymentVoided:       http.StatusConflict,
	domain.CodeVisitsRedeemed:      http.StatusConflict,
	domain.CodeRedemptionReversed:  http.StatusConflict,
	domain.CodePackageUsedUp:       http.StatusConflict,
	domain.CodePackageNotExpired:   http.StatusConflict,
	domain.CodeBreakageRecognized:  http.StatusConflict,
	domain.CodeConcurrentUpdate:    http.StatusConflict,
	domain.CodeIdempotencyConflict: http.StatusUnprocessableEntity,

	domain.CodeOverpayment:      http.StatusUnprocessableEntity,
	domain.CodeUnknownService:   http.StatusUnprocessableEntity,
	domain.CodeModelNotCovered:  http.StatusUnprocessableEntity,
	domain.CodeNothingToRecover: http.StatusUnprocessableEntity,

	domain.CodeUnavailable: http.StatusServiceUnavailable,
	domain.CodeUnreachable: http.StatusServiceUnavailable,
	domain.CodeInternal:    http.StatusInternalServerError,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError is the one place an error becomes a response. Anything that
// is not a domain error is internal: logged here, never shown.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	detail := errorDetail{Code: code, Message: domain.ErrorMessage(err)}
	var de *domain.Error
	if errors.As(err, &de) {
		detail.Field = de.Field
	}
	switch {
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	default:
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	switch {
	case code == domain.CodeUnreachable:
		// NATS reconnects every half second; an outage that a client
		// sees usually lasts seconds, so asking for more than a couple
		// would only slow the till down once it is over.
		w.Header().Set("Retry-After", "2")
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="packledger"`)
	}
	writeJSON(w, status, errorBody{detail})
}
