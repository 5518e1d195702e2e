package projections

import (
	"bytes"
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

// stampIn is stamp for a time that must be in zone loc.
func (l *locations) stampIn(t time.Time, loc uint8) (int64, bool) {
	ns, id, ok := l.stamp(t)
	return ns, ok && id == loc
}

func (l *locations) time(ns int64, loc uint8) time.Time { return time.Unix(0, ns).In(l.locs[loc]) }

// parties numbers the (dealer, store, model, advisor) of sales.
type parties struct {
	list []party
	ids  map[party]uint32
}

func (m *Model) partyOf(p party) uint32 {
	if i, ok := m.parties.ids[p]; ok {
		return i
	}
	i := uint32(len(m.parties.list))
	m.parties.list = append(m.parties.list, p)
	m.parties.ids[p] = i
	return i
}

// planCopy is a plan as sold, with the units of the sale: every package
// of a plan carries the same copy, kept once.
type planCopy struct {
	ord    int // its place in planCopies.list
	plan   domain.Plan
	units  []domain.UnitSpec
	values []int64 // the units' values, in cents
	price  int64   // the sale's price, in cents
	// The plan and units as the first sale stored them: a later sale
	// storing the same bytes decoded to the same copy, which a byte
	// comparison tells far more cheaply than the amounts one by one.
	rawPlan, rawUnits []byte
}

type planCopies struct {
	byCode map[string][]*planCopy
	list   []*planCopy
}

func newPlanCopies() planCopies { return planCopies{byCode: map[string][]*planCopy{}} }

// of returns the kept copy equal to plan, units and price, keeping them
// if there is none; false if an amount is not whole cents.
func (pc *planCopies) of(plan domain.Plan, units []domain.UnitSpec, price domain.Money, data []byte) (*planCopy, bool) {
	cents, ok := centsOf(price)
	if !ok {
		return nil, false
	}
	rawPlan, rawUnits := saleParts(data)
	for _, c := range pc.byCode[plan.Code] {
		if c.price != cents {
			continue
		}
		if rawPlan != nil && bytes.Equal(rawPlan, c.rawPlan) && bytes.Equal(rawUnits, c.rawUnits) {
			return c, true
		}
		if samePlan(c.plan, plan) && sameUnits(c.units, units) {
			if c.rawPlan == nil && rawPlan != nil { // a copy read from a checkpoint
				c.rawPlan, c.rawUnits = bytes.Clone(rawPlan), bytes.Clone(rawUnits)
			}
			return c, true
		}
	}
	c := &planCopy{ord: len(pc.list), plan: plan, units: units, values: make([]int64, len(units)), price: cents,
		rawPlan: bytes.Clone(rawPlan), rawUnits: bytes.Clone(rawUnits)}
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

// saleParts finds the plan and the units in a PackageSold's stored data
// as domain.EncodeEvent writes it: {"package_id":"…","plan":{…},
// "customer":…,"units":[…],"advisor":…}. Neither a JSON string (whose
// quotes are escaped) nor the plan holds the keys it looks for. Data of
// another shape gives nil, and the amounts are compared instead.
func saleParts(data []byte) (plan, units []byte) {
	const head = `{"package_id":"00000000-0000-0000-0000-000000000000","plan":`
	if len(data) < len(head) || !bytes.HasPrefix(data, []byte(`{"package_id":"`)) || string(data[51:len(head)]) != `","plan":` {
		return nil, nil
	}
	rest := data[len(head):]
	end := bytes.Index(rest, []byte(`,"customer":`))
	adv := bytes.LastIndex(data, []byte(`,"advisor":`))
	if end < 0 || adv < 0 {
		return nil, nil
	}
	u := bytes.LastIndex(data[:adv], []byte(`,"units":`))
	if u < len(head)+end {
		return nil, nil
	}
	return rest[:end], data[u:adv]
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
//
// A key is not kept: it is read back from the text of the first package
// filed under it, which a sale never changes. own holds the few keys that
// are not that package's own field: a plate that normalizing changed, a
// package's second sale (which the domain's fold keeps, and files too).
type postings struct {
	idx    *cow.Index[string] // key → ordinal
	first  []int32
	more   map[int32][]int32 // ordinal → the packages after the first
	field  func(pos int32) string
	own    map[int32]string
	hasOwn []uint64 // bit per ordinal: the key is in own
}

func newPostings(field func(pos int32) string) *postings {
	p := &postings{more: map[int32][]int32{}, field: field, own: map[int32]string{}}
	p.idx = cow.NewIndex(p.key)
	return p
}

func (p *postings) key(ord int32) string {
	if p.hasOwn[ord>>6]&(1<<(ord&63)) != 0 {
		return p.own[ord]
	}
	return p.field(p.first[ord])
}

func (p *postings) add(key string, pos int32) {
	ord := int32(len(p.first))
	p.first = append(p.first, pos)
	if ord&63 == 0 {
		p.hasOwn = append(p.hasOwn, 0)
	}
	own := key != p.field(pos)
	if own {
		p.own[ord] = strings.Clone(key)
		p.hasOwn[ord>>6] |= 1 << (ord & 63)
	}
	at, found := p.idx.GetOrPut(key, ord)
	if !found {
		return
	}
	p.first = p.first[:ord] // the key was filed already: undo
	if ord&63 == 0 {
		p.hasOwn = p.hasOwn[:len(p.hasOwn)-1]
	} else {
		p.hasOwn[ord>>6] &^= 1 << (ord & 63)
	}
	delete(p.own, ord)
	p.more[at] = append(p.more[at], pos)
}

func (p *postings) get(key string) []int32 {
	ord, ok := p.idx.Get(key)
	if !ok {
		return nil
	}
	return append([]int32{p.first[ord]}, p.more[ord]...)
}

// saleKeys finds the package an actor sold with an idempotency key; a
// later sale under the same key takes it over, as a map would. Keys are
// read back from the packages, as postings' are.
type saleKeys struct {
	idx   *cow.Index[string]
	pos   []int32
	field func(pos int32) string
	own   map[int32]string
}

func newSaleKeys(field func(pos int32) string) *saleKeys {
	s := &saleKeys{field: field, own: map[int32]string{}}
	s.idx = cow.NewIndex(s.key)
	return s
}

func (s *saleKeys) key(ord int32) string {
	if k, ok := s.own[ord]; ok {
		return k
	}
	return s.field(s.pos[ord])
}

func (s *saleKeys) put(key string, pos int32) {
	ord := int32(len(s.pos))
	s.pos = append(s.pos, pos)
	own := key != s.field(pos)
	if own {
		s.own[ord] = strings.Clone(key)
	}
	at, found := s.idx.GetOrPut(key, ord)
	if !found {
		return
	}
	s.pos = s.pos[:ord]
	delete(s.own, ord)
	s.pos[at] = pos
	if own {
		s.own[at] = strings.Clone(key)
	}
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
	fVIN = iota // the looked-up ones first: an index reads its keys back
	fCustomerID
	fPlate
	fSaleKey
	fCustomerName
	fPhone
	fRegistered
	textFields
)

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// field returns field k of a package's text; a package that took an
// event before its sale has none.
func field(text string, k int) string {
	if text == "" {
		return ""
	}
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

// normPhone is a phone number as it is looked up: its digits, without
// China's country code, so that "+86 138-0013-8000" and "13800138000"
// are one number.
func normPhone(p string) string {
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, p)
	if len(digits) == 13 && strings.HasPrefix(digits, "86") {
		return digits[2:]
	}
	return digits
}

func saleKey(actor, key string) string { return actor + "\x00" + key }
