package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/internal/strictjson"
)

// Event is one immutable fact. Its type name is part of the stored record
// and never changes; a new shape gets a new schema version.
type Event interface {
	EventType() string
}

// SchemaVersion is the version of every event shape written today.
const SchemaVersion = 1

// Role is what a user may do (DESIGN.md §1).
type Role string

const (
	RoleAdvisor Role = "advisor"
	RoleCashier Role = "cashier"
	RoleManager Role = "manager"
	RoleAuditor Role = "auditor"
	// RoleSystem acts for the server itself: the expiry and breakage sweeps.
	RoleSystem Role = "system"
)

// Actor is who caused an event.
type Actor struct {
	ID   string `json:"id"`
	Role Role   `json:"role"`
}

// Envelope is an event with the facts about it: who, where, when, and its
// place in its aggregate's hash chain. Data holds the event as stored;
// Event is it decoded. Seq, Subject, Hash, Sig and KeyID come from the
// stream, not from the stored bytes.
type Envelope struct {
	ID           uuid.UUID `json:"id"`
	Type         string    `json:"type"`
	Schema       int       `json:"schema"`
	Dealer       string    `json:"dealer"`
	Store        string    `json:"store"`
	Aggregate    string    `json:"aggregate"`
	BusinessTime time.Time `json:"business_time"`
	RecordedAt   time.Time `json:"recorded_at"`
	Actor        Actor     `json:"actor"`
	Key          string    `json:"idempotency_key,omitempty"`
	// Request is a digest of the request that carried Key, so that the key
	// sent again with a different request is refused, not mistaken for a
	// retry.
	Request string          `json:"request,omitempty"`
	Prev    string          `json:"prev"`
	Data    json.RawMessage `json:"data"`

	Event   Event  `json:"-"`
	Seq     uint64 `json:"-"`
	Subject string `json:"-"`
	Hash    string `json:"-"`
	// Sig and KeyID are the ledger's signature of Hash and the key that
	// made it, carried beside the body.
	Sig   string `json:"-"`
	KeyID string `json:"-"`
	// Mac lets the server that holds the key know its own events
	// without checking the signature (see eventstore's Signer.MAC).
	Mac string `json:"-"`
}

// The events of DESIGN.md §3.

type PlanDefined struct {
	Plan Plan `json:"plan"`
}

type PlanRetired struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Customer is who bought a package.
type Customer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// Vehicle is what a package is for.
type Vehicle struct {
	VIN        string `json:"vin"`
	Plate      string `json:"plate"`
	Model      string `json:"model"`
	Registered string `json:"registered,omitempty"`
}

type PackageSold struct {
	PackageID uuid.UUID  `json:"package_id"`
	Plan      Plan       `json:"plan"`
	Customer  Customer   `json:"customer"`
	Vehicle   Vehicle    `json:"vehicle"`
	Price     Money      `json:"price"`
	Units     []UnitSpec `json:"units"`
	Advisor   string     `json:"advisor"`
}

// PaymentMethod is how a customer paid, or how a refund was paid out.
type PaymentMethod string

// PaymentMethods lists the accepted methods in display order.
var PaymentMethods = []PaymentMethod{"cash", "card", "wechat", "alipay", "bank_transfer"}

// CheckMethod validates a payment or refund method.
func CheckMethod(field string, m PaymentMethod) error {
	for _, ok := range PaymentMethods {
		if m == ok {
			return nil
		}
	}
	return FieldErrorf(CodeInvalidField, field, "%q is not one of cash, card, wechat, alipay, bank_transfer", truncate(string(m), 40))
}

type PaymentRecorded struct {
	PaymentID uuid.UUID     `json:"payment_id"`
	Amount    Money         `json:"amount"`
	Method    PaymentMethod `json:"method"`
	Receipt   string        `json:"receipt"`
}

type PaymentVoided struct {
	PaymentID uuid.UUID `json:"payment_id"`
	Reason    string    `json:"reason"`
}

type PackageActivated struct {
	ActivatedAt time.Time `json:"activated_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

type VisitRedeemed struct {
	RedemptionID uuid.UUID `json:"redemption_id"`
	Unit         int       `json:"unit"`
	Service      string    `json:"service"`
	Value        Money     `json:"value"`
	RepairOrder  string    `json:"repair_order"`
	Mileage      int       `json:"mileage"`
}

type RedemptionReversed struct {
	RedemptionID uuid.UUID `json:"redemption_id"`
	Reason       string    `json:"reason"`
}

type PackageRefunded struct {
	Amount     Money         `json:"amount"`
	Fee        Money         `json:"fee"`
	Recognized Money         `json:"recognized"`
	Base       Money         `json:"base"`
	Policy     string        `json:"policy"`
	Method     PaymentMethod `json:"method"`
	Reason     string        `json:"reason"`
}

type PackageExpired struct {
	ExpiredAt time.Time `json:"expired_at"`
}

type BreakageRecognized struct {
	Amount Money  `json:"amount"`
	Reason string `json:"reason"`
}

type BreakageReversed struct {
	Amount Money `json:"amount"`
}

// ReceiptClaimed is written on a receipt's own subject in the same atomic
// batch as the payment, so that a receipt number is used at most once per
// dealer for ever: the stream, not a cache, decides which of two racing
// payments gets it.
type ReceiptClaimed struct {
	Receipt   string    `json:"receipt"`
	PackageID uuid.UUID `json:"package_id"`
	PaymentID uuid.UUID `json:"payment_id"`
	Amount    Money     `json:"amount"`
}

func (PlanDefined) EventType() string        { return "PlanDefined" }
func (PlanRetired) EventType() string        { return "PlanRetired" }
func (PackageSold) EventType() string        { return "PackageSold" }
func (PaymentRecorded) EventType() string    { return "PaymentRecorded" }
func (PaymentVoided) EventType() string      { return "PaymentVoided" }
func (PackageActivated) EventType() string   { return "PackageActivated" }
func (VisitRedeemed) EventType() string      { return "VisitRedeemed" }
func (RedemptionReversed) EventType() string { return "RedemptionReversed" }
func (PackageRefunded) EventType() string    { return "PackageRefunded" }
func (PackageExpired) EventType() string     { return "PackageExpired" }
func (BreakageRecognized) EventType() string { return "BreakageRecognized" }
func (BreakageReversed) EventType() string   { return "BreakageReversed" }
func (ReceiptClaimed) EventType() string     { return "ReceiptClaimed" }

// errTrailing refuses data holding a second value after the event's:
// it would be read one way here and maybe another way by another reader.
var errTrailing = errors.New("trailing data after the event")

// EncodeEvent returns the stored form of an event's data.
func EncodeEvent(e Event) ([]byte, error) {
	return json.Marshal(e)
}

// DecodeEvent decodes the data of a stored event of the given type and
// schema version. Unknown types and versions are errors: a reader must
// never guess at money.
func DecodeEvent(typ string, schema int, data []byte) (Event, error) {
	if schema != SchemaVersion {
		return nil, fmt.Errorf("event %s: unknown schema version %d", typ, schema)
	}
	r := strictjson.NewReader(data)
	e, ok := ReadEvent(&r, typ)
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", typ)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	if r.More() {
		return nil, fmt.Errorf("decode %s: %w", typ, errTrailing)
	}
	return e, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
