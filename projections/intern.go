package projections

import (
	"encoding/binary"
	"strings"
	"time"
	"unicode"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/cow"
)

// interner keeps one copy of each string that many packages repeat:
// dealers, stores, users, methods, vehicle models.
type interner struct {
	strs []string
	ids  map[string]uint32
}

func newInterner() interner { return interner{ids: map[string]uint32{}} }

func (in *interner) id(s string) uint32 {
	if i, ok := in.ids[s]; ok {
		return i
	}
	s = strings.Clone(s) // not the decoded message it came in
	i := uint32(len(in.strs))
	in.strs = append(in.strs, s)
	in.ids[s] = i
	return i
}

// locations numbers the time zones of the times kept: times decoded from
// the stream are UTC, and a test's are in a zone or two.
type locations struct {
	locs []*time.Location
	ids  map[*time.Location]uint8
}

func newLocations() locations { return locations{ids: map[*time.Location]uint8{}} }

// id numbers loc; false when 256 zones are numbered already.
func (l *locations) id(loc *time.Location) (uint8, bool) {
	if i, ok := l.ids[loc]; ok {
		return i, true
	}
	if len(l.locs) == 256 {
		return 0, false
	}
	i := uint8(len(l.locs))
	l.locs = append(l.locs, loc)
	l.ids[loc] = i
	return i, true
}

// stamp is an instant as the compact form keeps it: unix nanoseconds, and
// the number of its zone.
func (l *locations) stamp(t time.Time) (ns int64, loc uint8, ok bool) {
	const lo, hi = -9223372036, 9223372035 // seconds whose nanoseconds fit
	if s := t.Unix(); s < lo || s > hi {
		return 0, 0, false
	}
	loc, ok = l.id(t.Location())
	return t.UnixNano(), loc, ok
}

func (l *locations) time(ns int64, loc uint8) time.Time { return time.Unix(0, ns).In(l.locs[loc]) }

// planCopy is a plan as sold, with the units of the sale: every package
// of a plan carries the same copy, kept once.
type planCopy struct {
	ord    int // its place in planCopies.list
	plan   domain.Plan
	units  []domain.UnitSpec
	values []int64 // the units' values, in cents
}

type planCopies struct {
	byCode map[string][]*planCopy
	list   []*planCopy
}

func newPlanCopies() planCopies { return planCopies{byCode: map[string][]*planCopy{}} }

// of returns the kept copy equal to plan and units, keeping them if there
// is none; false if a unit's value is not whole cents.
func (pc *planCopies) of(plan domain.Plan, units []domain.UnitSpec) (*planCopy, bool) {
	for _, c := range pc.byCode[plan.Code] {
		if samePlan(c.plan, plan) && sameUnits(c.units, units) {
			return c, true
		}
	}
	c := &planCopy{ord: len(pc.list), plan: plan, units: units, values: make([]int64, len(units))}
	if sameUnits(plan.Units, units) {
		c.units = plan.Units // the sale's units are its plan's, as Decide makes them
	}
	for i, u := range units {
		v, ok := centsOf(u.Value)
		if !ok {
			return nil, false
		}
		c.values[i] = v
	}
	pc.list = append(pc.list, c)
	pc.byCode[plan.Code] = append(pc.byCode[plan.Code], c)
	return c, true
}

// samePlan reports whether two plan copies show and compute alike: equal
// amounts and rates are equal whatever their decimal exponent, and a nil
// list differs from an empty one (null is not [] in JSON).
func samePlan(a, b domain.Plan) bool {
	return a.Code == b.Code && a.Name == b.Name && sameStrings(a.Models, b.Models) &&
		sameEntitlements(a.Entitlements, b.Entitlements) && sameRate(a.Rate, b.Rate) &&
		a.ListTotal.Equal(b.ListTotal) && a.Price.Equal(b.Price) && sameUnits(a.Units, b.Units) &&
		a.ValidityMonths == b.ValidityMonths && a.RefundPolicy == b.RefundPolicy &&
		a.CancellationFeeRate.Cmp(b.CancellationFeeRate) == 0 && a.FreeLookDays == b.FreeLookDays &&
		sameInterval(a.ServiceInterval, b.ServiceInterval) && sameStrings(a.Gifts, b.Gifts)
}

func sameStrings(a, b []string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameEntitlements(a, b []domain.Entitlement) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Service != b[i].Service || a[i].Count != b[i].Count || !a[i].ListPrice.Equal(b[i].ListPrice) {
			return false
		}
	}
	return true
}

func sameUnits(a, b []domain.UnitSpec) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || a[i].Service != b[i].Service ||
			!a[i].ListPrice.Equal(b[i].ListPrice) || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

func sameRate(a, b *domain.Rate) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cmp(*b) == 0
}

func sameInterval(a, b *domain.ServiceInterval) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// postings is a look-up from a key (a VIN, a plate, a customer) to the
// packages sold under it, in the order of their sales.
type postings struct {
	idx   *cow.Index[string] // key → ordinal
	keys  []string
	first []int32
	more  map[int32][]int32 // ordinal → the packages after the first
}

func newPostings() *postings {
	p := &postings{more: map[int32][]int32{}}
	p.idx = cow.NewIndex(func(ord int32) string { return p.keys[ord] })
	return p
}

func (p *postings) add(key string, pos int32) {
	if ord, ok := p.idx.Get(key); ok {
		p.more[ord] = append(p.more[ord], pos)
		return
	}
	ord := int32(len(p.keys))
	p.keys = append(p.keys, key)
	p.first = append(p.first, pos)
	p.idx.Put(key, ord)
}

func (p *postings) get(key string) []int32 {
	ord, ok := p.idx.Get(key)
	if !ok {
		return nil
	}
	return append([]int32{p.first[ord]}, p.more[ord]...)
}

// saleKeys finds the package an actor sold with an idempotency key; a
// later sale under the same key takes it over, as a map would.
type saleKeys struct {
	idx  *cow.Index[string]
	keys []string
	pos  []int32
}

func newSaleKeys() *saleKeys {
	s := &saleKeys{}
	s.idx = cow.NewIndex(func(ord int32) string { return s.keys[ord] })
	return s
}

func (s *saleKeys) put(key string, pos int32) {
	if ord, ok := s.idx.Get(key); ok {
		s.pos[ord] = pos
		return
	}
	s.keys = append(s.keys, key)
	s.pos = append(s.pos, pos)
	s.idx.Put(key, int32(len(s.keys)-1))
}

func (s *saleKeys) get(key string) (int32, bool) {
	ord, ok := s.idx.Get(key)
	if !ok {
		return 0, false
	}
	return s.pos[ord], true
}

// The strings of a sale, kept in one string per package (each field its
// length, then its bytes): one allocation where seven strings took seven
// headers and seven allocations.
const (
	fCustomerID = iota
	fCustomerName
	fPhone
	fVIN
	fPlate
	fRegistered
	fSaleKey
	textFields
)

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// field returns field k of a package's text.
func field(text string, k int) string {
	for i := 0; ; i++ {
		n, w := uvarint(text)
		text = text[w:]
		if i == k {
			return text[:n]
		}
		text = text[n:]
	}
}

// uvarint reads a varint written by binary.AppendUvarint at the start of
// s; text written by appendField always holds one.
func uvarint(s string) (n, width int) {
	var x uint64
	for shift := uint(0); ; shift += 7 {
		c := s[width]
		width++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int(x), width
		}
	}
}

// normPlate makes plate look-ups forgiving of case and spaces, as people
// type them at reception.
func normPlate(p string) string {
	if strings.IndexFunc(p, unicode.IsSpace) < 0 {
		return strings.ToUpper(p) // the common case, without a slice of one
	}
	return strings.ToUpper(strings.Join(strings.Fields(p), ""))
}

func saleKey(actor, key string) string { return actor + "\x00" + key }
