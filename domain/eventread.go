package domain

import (
	"github.com/google/uuid"

	"github.com/packledger/packledger/internal/strictjson"
)

// Each event's data is read field by field with strictjson, which keeps
// encoding/json's strict rules (unknown fields refused, keys matched as
// it matches them, amounts through Money's own UnmarshalJSON) without
// its reflection: every event read back from the log comes this way.

var (
	planDefinedFields        = strictjson.StructOf[PlanDefined]()
	planRetiredFields        = strictjson.StructOf[PlanRetired]()
	packageSoldFields        = strictjson.StructOf[PackageSold]()
	paymentRecordedFields    = strictjson.StructOf[PaymentRecorded]()
	paymentVoidedFields      = strictjson.StructOf[PaymentVoided]()
	packageActivatedFields   = strictjson.StructOf[PackageActivated]()
	visitRedeemedFields      = strictjson.StructOf[VisitRedeemed]()
	redemptionReversedFields = strictjson.StructOf[RedemptionReversed]()
	packageRefundedFields    = strictjson.StructOf[PackageRefunded]()
	packageExpiredFields     = strictjson.StructOf[PackageExpired]()
	breakageRecognizedFields = strictjson.StructOf[BreakageRecognized]()
	breakageReversedFields   = strictjson.StructOf[BreakageReversed]()
	receiptClaimedFields     = strictjson.StructOf[ReceiptClaimed]()

	planFields            = strictjson.StructOf[Plan]()
	entitlementFields     = strictjson.StructOf[Entitlement]()
	unitSpecFields        = strictjson.StructOf[UnitSpec]()
	serviceIntervalFields = strictjson.StructOf[ServiceInterval]()
	customerFields        = strictjson.StructOf[Customer]()
	vehicleFields         = strictjson.StructOf[Vehicle]()
)

// ReadEvent reads from r the data of an event of type typ and of schema
// SchemaVersion, as DecodeEvent does, or says that there is no such type;
// r holds what went wrong. It lets a reader of a stored envelope read the
// event where it meets its data. Each case calls its reader directly, so
// that the event is read on the stack and only copied to the heap as an
// Event.
func ReadEvent(r *strictjson.Reader, typ string) (Event, bool) {
	switch typ {
	case "PlanDefined":
		var e PlanDefined
		readPlanDefined(r, &e)
		return e, true
	case "PlanRetired":
		var e PlanRetired
		readPlanRetired(r, &e)
		return e, true
	case "PackageSold":
		var e PackageSold
		readPackageSold(r, &e)
		return e, true
	case "PaymentRecorded":
		var e PaymentRecorded
		readPaymentRecorded(r, &e)
		return e, true
	case "PaymentVoided":
		var e PaymentVoided
		readPaymentVoided(r, &e)
		return e, true
	case "PackageActivated":
		var e PackageActivated
		readPackageActivated(r, &e)
		return e, true
	case "VisitRedeemed":
		var e VisitRedeemed
		readVisitRedeemed(r, &e)
		return e, true
	case "RedemptionReversed":
		var e RedemptionReversed
		readRedemptionReversed(r, &e)
		return e, true
	case "PackageRefunded":
		var e PackageRefunded
		readPackageRefunded(r, &e)
		return e, true
	case "PackageExpired":
		var e PackageExpired
		readPackageExpired(r, &e)
		return e, true
	case "BreakageRecognized":
		var e BreakageRecognized
		readBreakageRecognized(r, &e)
		return e, true
	case "BreakageReversed":
		var e BreakageReversed
		readBreakageReversed(r, &e)
		return e, true
	case "ReceiptClaimed":
		var e ReceiptClaimed
		readReceiptClaimed(r, &e)
		return e, true
	}
	return nil, false
}

func readPlanDefined(r *strictjson.Reader, e *PlanDefined) {
	for f := r.Object(planDefinedFields); f.Next(); {
		switch f.Name() {
		case "plan":
			readPlan(r, &e.Plan)
		}
	}
}

func readPlanRetired(r *strictjson.Reader, e *PlanRetired) {
	for f := r.Object(planRetiredFields); f.Next(); {
		switch f.Name() {
		case "code":
			strictjson.String(r, &e.Code)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	}
}

func readPackageSold(r *strictjson.Reader, e *PackageSold) {
	for f := r.Object(packageSoldFields); f.Next(); {
		switch f.Name() {
		case "package_id":
			strictjson.Text[uuid.UUID](r, e.PackageID.UnmarshalText)
		case "plan":
			readPlan(r, &e.Plan)
		case "customer":
			readCustomer(r, &e.Customer)
		case "vehicle":
			readVehicle(r, &e.Vehicle)
		case "price":
			r.Unmarshal(e.Price.UnmarshalJSON)
		case "units":
			for u := strictjson.Slice(r, &e.Units); u.Next(); {
				readUnitSpec(r, u.Elem())
			}
		case "advisor":
			strictjson.String(r, &e.Advisor)
		}
	}
}

func readPaymentRecorded(r *strictjson.Reader, e *PaymentRecorded) {
	for f := r.Object(paymentRecordedFields); f.Next(); {
		switch f.Name() {
		case "payment_id":
			strictjson.Text[uuid.UUID](r, e.PaymentID.UnmarshalText)
		case "amount":
			r.Unmarshal(e.Amount.UnmarshalJSON)
		case "method":
			strictjson.String(r, &e.Method)
		case "receipt":
			strictjson.String(r, &e.Receipt)
		}
	}
}

func readPaymentVoided(r *strictjson.Reader, e *PaymentVoided) {
	for f := r.Object(paymentVoidedFields); f.Next(); {
		switch f.Name() {
		case "payment_id":
			strictjson.Text[uuid.UUID](r, e.PaymentID.UnmarshalText)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	}
}

func readPackageActivated(r *strictjson.Reader, e *PackageActivated) {
	for f := r.Object(packageActivatedFields); f.Next(); {
		switch f.Name() {
		case "activated_at":
			r.Unmarshal(e.ActivatedAt.UnmarshalJSON)
		case "expires_at":
			r.Unmarshal(e.ExpiresAt.UnmarshalJSON)
		}
	}
}

func readVisitRedeemed(r *strictjson.Reader, e *VisitRedeemed) {
	for f := r.Object(visitRedeemedFields); f.Next(); {
		switch f.Name() {
		case "redemption_id":
			strictjson.Text[uuid.UUID](r, e.RedemptionID.UnmarshalText)
		case "unit":
			strictjson.Int(r, &e.Unit)
		case "service":
			strictjson.String(r, &e.Service)
		case "value":
			r.Unmarshal(e.Value.UnmarshalJSON)
		case "repair_order":
			strictjson.String(r, &e.RepairOrder)
		case "mileage":
			strictjson.Int(r, &e.Mileage)
		}
	}
}

func readRedemptionReversed(r *strictjson.Reader, e *RedemptionReversed) {
	for f := r.Object(redemptionReversedFields); f.Next(); {
		switch f.Name() {
		case "redemption_id":
			strictjson.Text[uuid.UUID](r, e.RedemptionID.UnmarshalText)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	}
}

func readPackageRefunded(r *strictjson.Reader, e *PackageRefunded) {
	for f := r.Object(packageRefundedFields); f.Next(); {
		switch f.Name() {
		case "amount":
			r.Unmarshal(e.Amount.UnmarshalJSON)
		case "fee":
			r.Unmarshal(e.Fee.UnmarshalJSON)
		case "recognized":
			r.Unmarshal(e.Recognized.UnmarshalJSON)
		case "base":
			r.Unmarshal(e.Base.UnmarshalJSON)
		case "policy":
			strictjson.String(r, &e.Policy)
		case "method":
			strictjson.String(r, &e.Method)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	}
}

func readPackageExpired(r *strictjson.Reader, e *PackageExpired) {
	for f := r.Object(packageExpiredFields); f.Next(); {
		switch f.Name() {
		case "expired_at":
			r.Unmarshal(e.ExpiredAt.UnmarshalJSON)
		}
	}
}

func readBreakageRecognized(r *strictjson.Reader, e *BreakageRecognized) {
	for f := r.Object(breakageRecognizedFields); f.Next(); {
		switch f.Name() {
		case "amount":
			r.Unmarshal(e.Amount.UnmarshalJSON)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	}
}

func readBreakageReversed(r *strictjson.Reader, e *BreakageReversed) {
	for f := r.Object(breakageReversedFields); f.Next(); {
		switch f.Name() {
		case "amount":
			r.Unmarshal(e.Amount.UnmarshalJSON)
		}
	}
}

func readReceiptClaimed(r *strictjson.Reader, e *ReceiptClaimed) {
	for f := r.Object(receiptClaimedFields); f.Next(); {
		switch f.Name() {
		case "receipt":
			strictjson.String(r, &e.Receipt)
		case "package_id":
			strictjson.Text[uuid.UUID](r, e.PackageID.UnmarshalText)
		case "payment_id":
			strictjson.Text[uuid.UUID](r, e.PaymentID.UnmarshalText)
		case "amount":
			r.Unmarshal(e.Amount.UnmarshalJSON)
		}
	}
}

func readPlan(r *strictjson.Reader, p *Plan) {
	for f := r.Object(planFields); f.Next(); {
		switch f.Name() {
		case "code":
			strictjson.String(r, &p.Code)
		case "name":
			strictjson.String(r, &p.Name)
		case "models":
			for e := strictjson.Slice(r, &p.Models); e.Next(); {
				strictjson.String(r, e.Elem())
			}
		case "entitlements":
			for e := strictjson.Slice(r, &p.Entitlements); e.Next(); {
				readEntitlement(r, e.Elem())
			}
		case "rate":
			if strictjson.Pointer(r, &p.Rate) {
				r.Unmarshal(p.Rate.UnmarshalJSON)
			}
		case "list_total":
			r.Unmarshal(p.ListTotal.UnmarshalJSON)
		case "price":
			r.Unmarshal(p.Price.UnmarshalJSON)
		case "units":
			for e := strictjson.Slice(r, &p.Units); e.Next(); {
				readUnitSpec(r, e.Elem())
			}
		case "validity_months":
			strictjson.Int(r, &p.ValidityMonths)
		case "refund_policy":
			strictjson.String(r, &p.RefundPolicy)
		case "cancellation_fee_rate":
			r.Unmarshal(p.CancellationFeeRate.UnmarshalJSON)
		case "free_look_days":
			strictjson.Int(r, &p.FreeLookDays)
		case "service_interval":
			if strictjson.Pointer(r, &p.ServiceInterval) {
				readServiceInterval(r, p.ServiceInterval)
			}
		case "gifts":
			for e := strictjson.Slice(r, &p.Gifts); e.Next(); {
				strictjson.String(r, e.Elem())
			}
		}
	}
}

func readEntitlement(r *strictjson.Reader, e *Entitlement) {
	for f := r.Object(entitlementFields); f.Next(); {
		switch f.Name() {
		case "service":
			strictjson.String(r, &e.Service)
		case "count":
			strictjson.Int(r, &e.Count)
		case "list_price":
			r.Unmarshal(e.ListPrice.UnmarshalJSON)
		}
	}
}

func readUnitSpec(r *strictjson.Reader, u *UnitSpec) {
	for f := r.Object(unitSpecFields); f.Next(); {
		switch f.Name() {
		case "index":
			strictjson.Int(r, &u.Index)
		case "service":
			strictjson.String(r, &u.Service)
		case "list_price":
			r.Unmarshal(u.ListPrice.UnmarshalJSON)
		case "value":
			r.Unmarshal(u.Value.UnmarshalJSON)
		}
	}
}

func readServiceInterval(r *strictjson.Reader, s *ServiceInterval) {
	for f := r.Object(serviceIntervalFields); f.Next(); {
		switch f.Name() {
		case "months":
			strictjson.Int(r, &s.Months)
		case "km":
			strictjson.Int(r, &s.KM)
		}
	}
}

func readCustomer(r *strictjson.Reader, c *Customer) {
	for f := r.Object(customerFields); f.Next(); {
		switch f.Name() {
		case "id":
			strictjson.String(r, &c.ID)
		case "name":
			strictjson.String(r, &c.Name)
		case "phone":
			strictjson.String(r, &c.Phone)
		}
	}
}

func readVehicle(r *strictjson.Reader, v *Vehicle) {
	for f := r.Object(vehicleFields); f.Next(); {
		switch f.Name() {
		case "vin":
			strictjson.String(r, &v.VIN)
		case "plate":
			strictjson.String(r, &v.Plate)
		case "model":
			strictjson.String(r, &v.Model)
		case "registered":
			strictjson.String(r, &v.Registered)
		}
	}
}
