package handlers

import (
	"net/http"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/projections"
)

type planRequest struct {
	Code                string                  `json:"code"`
	Name                string                  `json:"name"`
	Models              []string                `json:"models"`
	Entitlements        []domain.Entitlement    `json:"entitlements"`
	Price               *domain.Money           `json:"price"`
	Rate                *domain.Rate            `json:"rate"`
	ValidityMonths      int                     `json:"validity_months"`
	RefundPolicy        domain.RefundPolicy     `json:"refund_policy"`
	CancellationFeeRate *domain.Rate            `json:"cancellation_fee_rate"`
	FreeLookDays        int                     `json:"free_look_days"`
	ServiceInterval     *domain.ServiceInterval `json:"service_interval"`
	Gifts               []string                `json:"gifts"`
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) definePlan(w http.ResponseWriter, r *http.Request) {
	var req planRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.definePlanFor(r.Context(), opOf(r), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewPlan(p))
}

func (s *Server) retirePlan(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	if err := domain.CheckPlanCode(code); err != nil {
		s.writeError(w, r, domain.Errorf(domain.CodePlanNotFound, "no plan %q", truncateText(code, 40)))
		return
	}
	var req reasonRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.retirePlanFor(r.Context(), opOf(r), code, req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewPlan(p))
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	var out []planView
	s.reads.Read(func(m *projections.Model) {
		for _, p := range m.Plans() {
			out = append(out, viewPlan(p))
		}
	})
	if out == nil {
		out = []planView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plans": out})
}

func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	var (
		p  domain.PlanState
		ok bool
	)
	s.reads.Read(func(m *projections.Model) { p, ok = m.Plan(r.PathValue("code")) })
	if !ok {
		s.writeError(w, r, domain.Errorf(domain.CodePlanNotFound, "no plan %q", truncateText(r.PathValue("code"), 40)))
		return
	}
	writeJSON(w, http.StatusOK, viewPlan(p))
}

func foldPlan(hist []domain.Envelope) domain.PlanState {
	var p domain.PlanState
	for _, e := range hist {
		p = domain.ApplyPlan(p, e)
	}
	return p
}
