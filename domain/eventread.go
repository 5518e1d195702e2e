package domain

import (
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

// readAs makes a reader of an event's data from a reader of its fields.
func readAs[T Event](read func(*strictjson.Reader, *T)) func(*strictjson.Reader) Event {
	return func(r *strictjson.Reader) Event {
		var e T
		read(r, &e)
		return e
	}
}

func readPlanDefined(r *strictjson.Reader, e *PlanDefined) {
	r.Object(planDefinedFields, func(name string) {
		switch name {
		case "plan":
			readPlan(r, &e.Plan)
		}
	})
}

func readPlanRetired(r *strictjson.Reader, e *PlanRetired) {
	r.Object(planRetiredFields, func(name string) {
		switch name {
		case "code":
			strictjson.String(r, &e.Code)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	})
}

func readPackageSold(r *strictjson.Reader, e *PackageSold) {
	r.Object(packageSoldFields, func(name string) {
		switch name {
		case "package_id":
			strictjson.Text(r, &e.PackageID)
		case "plan":
			readPlan(r, &e.Plan)
		case "customer":
			readCustomer(r, &e.Customer)
		case "vehicle":
			readVehicle(r, &e.Vehicle)
		case "price":
			strictjson.Unmarshal(r, &e.Price)
		case "units":
			strictjson.Slice(r, &e.Units, readUnitSpec)
		case "advisor":
			strictjson.String(r, &e.Advisor)
		}
	})
}

func readPaymentRecorded(r *strictjson.Reader, e *PaymentRecorded) {
	r.Object(paymentRecordedFields, func(name string) {
		switch name {
		case "payment_id":
			strictjson.Text(r, &e.PaymentID)
		case "amount":
			strictjson.Unmarshal(r, &e.Amount)
		case "method":
			strictjson.String(r, &e.Method)
		case "receipt":
			strictjson.String(r, &e.Receipt)
		}
	})
}

func readPaymentVoided(r *strictjson.Reader, e *PaymentVoided) {
	r.Object(paymentVoidedFields, func(name string) {
		switch name {
		case "payment_id":
			strictjson.Text(r, &e.PaymentID)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	})
}

func readPackageActivated(r *strictjson.Reader, e *PackageActivated) {
	r.Object(packageActivatedFields, func(name string) {
		switch name {
		case "activated_at":
			strictjson.Unmarshal(r, &e.ActivatedAt)
		case "expires_at":
			strictjson.Unmarshal(r, &e.ExpiresAt)
		}
	})
}

func readVisitRedeemed(r *strictjson.Reader, e *VisitRedeemed) {
	r.Object(visitRedeemedFields, func(name string) {
		switch name {
		case "redemption_id":
			strictjson.Text(r, &e.RedemptionID)
		case "unit":
			strictjson.Int(r, &e.Unit)
		case "service":
			strictjson.String(r, &e.Service)
		case "value":
			strictjson.Unmarshal(r, &e.Value)
		case "repair_order":
			strictjson.String(r, &e.RepairOrder)
		case "mileage":
			strictjson.Int(r, &e.Mileage)
		}
	})
}

func readRedemptionReversed(r *strictjson.Reader, e *RedemptionReversed) {
	r.Object(redemptionReversedFields, func(name string) {
		switch name {
		case "redemption_id":
			strictjson.Text(r, &e.RedemptionID)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	})
}

func readPackageRefunded(r *strictjson.Reader, e *PackageRefunded) {
	r.Object(packageRefundedFields, func(name string) {
		switch name {
		case "amount":
			strictjson.Unmarshal(r, &e.Amount)
		case "fee":
			strictjson.Unmarshal(r, &e.Fee)
		case "recognized":
			strictjson.Unmarshal(r, &e.Recognized)
		case "base":
			strictjson.Unmarshal(r, &e.Base)
		case "policy":
			strictjson.String(r, &e.Policy)
		case "method":
			strictjson.String(r, &e.Method)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	})
}

func readPackageExpired(r *strictjson.Reader, e *PackageExpired) {
	r.Object(packageExpiredFields, func(name string) {
		switch name {
		case "expired_at":
			strictjson.Unmarshal(r, &e.ExpiredAt)
		}
	})
}

func readBreakageRecognized(r *strictjson.Reader, e *BreakageRecognized) {
	r.Object(breakageRecognizedFields, func(name string) {
		switch name {
		case "amount":
			strictjson.Unmarshal(r, &e.Amount)
		case "reason":
			strictjson.String(r, &e.Reason)
		}
	})
}

func readBreakageReversed(r *strictjson.Reader, e *BreakageReversed) {
	r.Object(breakageReversedFields, func(name string) {
		switch name {
		case "amount":
			strictjson.Unmarshal(r, &e.Amount)
		}
	})
}

func readReceiptClaimed(r *strictjson.Reader, e *ReceiptClaimed) {
	r.Object(receiptClaimedFields, func(name string) {
		switch name {
		case "receipt":
			strictjson.String(r, &e.Receipt)
		case "package_id":
			strictjson.Text(r, &e.PackageID)
		case "payment_id":
			strictjson.Text(r, &e.PaymentID)
		case "amount":
			strictjson.Unmarshal(r, &e.Amount)
		}
	})
}

func readPlan(r *strictjson.Reader, p *Plan) {
	r.Object(planFields, func(name string) {
		switch name {
		case "code":
			strictjson.String(r, &p.Code)
		case "name":
			strictjson.String(r, &p.Name)
		case "models":
			strictjson.Slice(r, &p.Models, strictjson.String[string])
		case "entitlements":
			strictjson.Slice(r, &p.Entitlements, readEntitlement)
		case "rate":
			strictjson.Pointer(r, &p.Rate, strictjson.Unmarshal[Rate])
		case "list_total":
			strictjson.Unmarshal(r, &p.ListTotal)
		case "price":
			strictjson.Unmarshal(r, &p.Price)
		case "units":
			strictjson.Slice(r, &p.Units, readUnitSpec)
		case "validity_months":
			strictjson.Int(r, &p.ValidityMonths)
		case "refund_policy":
			strictjson.String(r, &p.RefundPolicy)
		case "cancellation_fee_rate":
			strictjson.Unmarshal(r, &p.CancellationFeeRate)
		case "free_look_days":
			strictjson.Int(r, &p.FreeLookDays)
		case "service_interval":
			strictjson.Pointer(r, &p.ServiceInterval, readServiceInterval)
		case "gifts":
			strictjson.Slice(r, &p.Gifts, strictjson.String[string])
		}
	})
}

func readEntitlement(r *strictjson.Reader, e *Entitlement) {
	r.Object(entitlementFields, func(name string) {
		switch name {
		case "service":
			strictjson.String(r, &e.Service)
		case "count":
			strictjson.Int(r, &e.Count)
		case "list_price":
			strictjson.Unmarshal(r, &e.ListPrice)
		}
	})
}

func readUnitSpec(r *strictjson.Reader, u *UnitSpec) {
	r.Object(unitSpecFields, func(name string) {
		switch name {
		case "index":
			strictjson.Int(r, &u.Index)
		case "service":
			strictjson.String(r, &u.Service)
		case "list_price":
			strictjson.Unmarshal(r, &u.ListPrice)
		case "value":
			strictjson.Unmarshal(r, &u.Value)
		}
	})
}

func readServiceInterval(r *strictjson.Reader, s *ServiceInterval) {
	r.Object(serviceIntervalFields, func(name string) {
		switch name {
		case "months":
			strictjson.Int(r, &s.Months)
		case "km":
			strictjson.Int(r, &s.KM)
		}
	})
}

func readCustomer(r *strictjson.Reader, c *Customer) {
	r.Object(customerFields, func(name string) {
		switch name {
		case "id":
			strictjson.String(r, &c.ID)
		case "name":
			strictjson.String(r, &c.Name)
		case "phone":
			strictjson.String(r, &c.Phone)
		}
	})
}

func readVehicle(r *strictjson.Reader, v *Vehicle) {
	r.Object(vehicleFields, func(name string) {
		switch name {
		case "vin":
			strictjson.String(r, &v.VIN)
		case "plate":
			strictjson.String(r, &v.Plate)
		case "model":
			strictjson.String(r, &v.Model)
		case "registered":
			strictjson.String(r, &v.Registered)
		}
	})
}
