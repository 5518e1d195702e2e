package handlers

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

// packageView is a package as §5 shows it.
type packageView = projections.PackageView

func viewPackage(p domain.Package) packageView { return projections.ViewPackage(p) }

func viewPackages(ps []domain.Package) []packageView { return projections.ViewPackages(ps) }

// planView is a plan with its lifecycle.
type planView struct {
	domain.Plan
	Status       domain.PlanStatus `json:"status"`
	DefinedAt    time.Time         `json:"defined_at"`
	RetiredAt    *time.Time        `json:"retired_at,omitempty"`
	RetireReason string            `json:"retire_reason,omitempty"`
}

func viewPlan(s domain.PlanState) planView {
	p := s.Plan
	if p.Models == nil {
		p.Models = []string{}
	}
	if p.Gifts == nil {
		p.Gifts = []string{}
	}
	return planView{Plan: p, Status: s.Status, DefinedAt: s.DefinedAt, RetiredAt: s.RetiredAt, RetireReason: s.Reason}
}

// historyEntry is one event of a package's history with the package's
// figures after it.
type historyEntry struct {
	Seq          uint64          `json:"seq"`
	ID           uuid.UUID       `json:"id"`
	Type         string          `json:"type"`
	Schema       int             `json:"schema"`
	Dealer       string          `json:"dealer"`
	Store        string          `json:"store"`
	BusinessTime time.Time       `json:"business_time"`
	RecordedAt   time.Time       `json:"recorded_at"`
	Actor        domain.Actor    `json:"actor"`
	Key          string          `json:"idempotency_key,omitempty"`
	Prev         string          `json:"prev"`
	Hash         string          `json:"hash"`
	Data         json.RawMessage `json:"data"`
	After        historyAfter    `json:"after"`
	// Event is Data decoded, for the desk's timeline.
	Event domain.Event `json:"-"`
}

type historyAfter struct {
	Status    domain.Status  `json:"status"`
	Paid      domain.Money   `json:"paid"`
	Voided    domain.Money   `json:"voided"`
	Liability domain.Money   `json:"liability"`
	Remaining map[string]int `json:"remaining"`
}

// NetPaid is what was paid and not voided.
func (a historyAfter) NetPaid() domain.Money { return a.Paid.Sub(a.Voided) }
