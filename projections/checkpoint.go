package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
	"github.com/packledger/packledger/internal/cow"
	"github.com/packledger/packledger/internal/wire"
)

// A checkpoint of the read models is the whole Model in a compact binary
// form of its own: tables of the strings, zones, sale parties and plan
// copies the packages share, every package's text in one block (one
// string when read back, which the packages' strings point into), then
// the packages, the roll-forward's entries, the daily close's lines and
// the findings. The indexes are not written: they are rebuilt from the
// packages, as the events built them. A model holding what the compact
// form does not (a package in the domain's own form, an amount that is not
// whole cents) is not checkpointed at all.

// modelFormat versions the encoding; a checkpoint of another is ignored.
const modelFormat = 1

// ErrBadModel says an encoded model cannot be read.
var ErrBadModel = errors.New("read-model checkpoint")

// ErrCannotCheckpoint says the model holds what a checkpoint does not.
var ErrCannotCheckpoint = errors.New("the read models cannot be checkpointed")

// modelSnapshot is the Model frozen at one instant. Taking it copies a few
// chunk lists and marks the small maps shared; encoding it may then run
// while the Model goes on applying events.
type modelSnapshot struct {
	tz       string
	events   int
	lastSeq  uint64
	packs    cow.View[pack]
	plans    map[string]domain.PlanState
	strs     []string
	locs     []*time.Location
	parties  []party
	copies   []*planCopy
	at, amt  cow.View[int64]
	kind     cow.View[uint8]
	lines    map[lineKey]lineSums
	refunds  map[refundKey]refundSums
	findings []Finding
	// why is not empty when the model cannot be checkpointed.
	why string
}

// snapshot freezes the model; release once the snapshot is encoded.
func (m *Model) snapshot() *modelSnapshot {
	s := &modelSnapshot{
		tz: m.tz.String(), events: m.events, lastSeq: m.lastSeq,
		packs: m.packs.Snapshot(), plans: m.plans,
		strs: slices.Clip(m.strs.strs), locs: slices.Clip(m.locs.locs),
		parties: slices.Clip(m.parties.list), copies: slices.Clip(m.copies.list),
		at: m.liability.at.Snapshot(), amt: m.liability.amt.Snapshot(), kind: m.liability.kind.Snapshot(),
		lines: m.close.lines, refunds: m.close.refunds, findings: slices.Clip(m.findings),
	}
	m.plansShared, m.close.shared = true, true
	switch {
	case m.wide > 0:
		s.why = fmt.Sprintf("%d packages have histories the compact form does not hold", m.wide)
	case len(m.liability.odd) > 0 || len(m.close.odd) > 0 || len(m.close.oddRefunds) > 0:
		s.why = "the roll-forward or the daily close holds amounts that are not whole cents"
	}
	return s
}

// release ends the snapshots taken so far.
func (m *Model) release() {
	m.packs.Release()
	m.liability.at.Release()
	m.liability.amt.Release()
	m.liability.kind.Release()
}

// appendTo appends the snapshot's encoding to b.
func (s *modelSnapshot) appendTo(b []byte) ([]byte, error) {
	if s.why != "" {
		return b, fmt.Errorf("%w: %s", ErrCannotCheckpoint, s.why)
	}
	b = append(b, modelFormat)
	b = wire.AppendString(b, s.tz)
	b = wire.AppendUvarint(b, uint64(s.events))
	b = wire.AppendUvarint(b, s.lastSeq)

	b = wire.AppendUvarint(b, uint64(len(s.strs)))
	for _, x := range s.strs {
		b = wire.AppendString(b, x)
	}
	b = wire.AppendUvarint(b, uint64(len(s.locs)))
	for _, l := range s.locs {
		b = appendLoc(b, l)
	}
	b = wire.AppendUvarint(b, uint64(len(s.parties)))
	for _, p := range s.parties {
		for _, x := range [4]uint32{p.dealer, p.store, p.model, p.advisor} {
			b = wire.AppendUvarint(b, uint64(x))
		}
	}
	b = wire.AppendUvarint(b, uint64(len(s.copies)))
	for _, c := range s.copies {
		var err error
		if b, err = appendCopy(b, c); err != nil {
			return b, err
		}
	}
	b = wire.AppendUvarint(b, uint64(len(s.plans)))
	for _, code := range sortedKeys(s.plans) {
		var err error
		if b, err = appendPlanState(b, s.plans[code]); err != nil {
			return b, err
		}
	}

	// Every package's text, then the packages.
	n, texts, pays, reds := s.packs.Len(), 0, 0, 0
	for i := range n {
		pk := s.packs.At(i)
		texts += len(pk.text)
		pays += len(pk.payments)
		reds += len(pk.redemptions)
	}
	b = wire.AppendUvarint(b, uint64(texts))
	for i := range n {
		b = append(b, s.packs.At(i).text...)
	}
	b = wire.AppendUvarint(b, uint64(n))
	b = wire.AppendUvarint(b, uint64(pays))
	b = wire.AppendUvarint(b, uint64(reds))
	for i := range n {
		var err error
		if b, err = appendPack(b, s.packs.At(i)); err != nil {
			return b, err
		}
	}

	b = wire.AppendUvarint(b, uint64(s.at.Len()))
	prev := int64(math.MinInt64)
	for i := range s.at.Len() {
		at := *s.at.At(i)
		b = wire.AppendUvarint(b, uint64(at-prev)) // sorted: never negative
		b = wire.AppendVarint(b, *s.amt.At(i))
		b = append(b, *s.kind.At(i))
		prev = at
	}

	b = wire.AppendUvarint(b, uint64(len(s.lines)))
	for k, l := range s.lines {
		b = wire.AppendVarint(b, int64(k.day))
		b = wire.AppendUvarint(b, uint64(k.store))
		b = wire.AppendUvarint(b, uint64(k.cashier))
		b = wire.AppendUvarint(b, uint64(k.method))
		b = wire.AppendVarint(b, l.payments)
		b = wire.AppendVarint(b, l.voids)
		b = wire.AppendUvarint(b, uint64(l.payCount))
		b = wire.AppendUvarint(b, uint64(l.voidCount))
	}
	b = wire.AppendUvarint(b, uint64(len(s.refunds)))
	for k, r := range s.refunds {
		b = wire.AppendVarint(b, int64(k.day))
		b = wire.AppendUvarint(b, uint64(k.store))
		b = wire.AppendUvarint(b, uint64(k.method))
		b = wire.AppendVarint(b, r.amount)
		b = wire.AppendUvarint(b, uint64(r.count))
	}

	b = wire.AppendUvarint(b, uint64(len(s.findings)))
	for _, f := range s.findings {
		b = wire.AppendString(b, f.Package)
		b = wire.AppendUvarint(b, f.Seq)
		b = wire.AppendString(b, f.Subject)
		b = wire.AppendString(b, f.Problem)
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The kinds of zone a checkpoint names.
const (
	locUTC = iota
	locLocal
	locNamed // loaded by name from the time zone database
	locFixed // a name and an offset
)

func appendLoc(b []byte, l *time.Location) []byte {
	switch name := l.String(); {
	case l == time.UTC:
		return append(b, locUTC)
	case l == time.Local:
		return append(b, locLocal)
	case name != "" && loadable(name):
		return wire.AppendString(append(b, locNamed), name)
	default:
		zone, off := time.Unix(0, 0).In(l).Zone()
		b = wire.AppendString(append(b, locFixed), zone)
		return wire.AppendVarint(b, int64(off))
	}
}

func loadable(name string) bool {
	_, err := time.LoadLocation(name)
	return err == nil
}

func readLoc(r *wire.Reader) *time.Location {
	switch k := r.Byte(); k {
	case locUTC:
		return time.UTC
	case locLocal:
		return time.Local
	case locNamed:
		name := r.String(256)
		if r.Err() != nil {
			return time.UTC
		}
		l, err := time.LoadLocation(name)
		if err != nil || name == "" {
			r.Fail(fmt.Errorf("zone %q: %v", name, err))
			return time.UTC
		}
		return l
	case locFixed:
		name := r.String(256)
		off := r.Varint()
		if r.Err() == nil && (off < -24*3600 || off > 24*3600) {
			r.Fail(fmt.Errorf("a zone %d seconds off UTC", off))
		}
		return time.FixedZone(name, int(off))
	default:
		r.Fail(fmt.Errorf("zone kind %d", k))
		return time.UTC
	}
}

// appendTime writes an instant with its zone, for the few instants that
// are not a package's.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	var l locations = newLocations()
	ns, _, ok := l.stamp(t)
	if !ok {
		return b, fmt.Errorf("%w: the instant %s", ErrCannotCheckpoint, t)
	}
	b = wire.AppendVarint(b, ns)
	return appendLoc(b, t.Location()), nil
}

func readTime(r *wire.Reader) time.Time {
	ns := r.Varint()
	return time.Unix(0, ns).In(readLoc(r))
}

// copyJSON is a plan copy as a checkpoint writes it: plans are few, and
// JSON holds them as exactly as the events that brought them did, but for
// amounts of more than two places, which are refused.
type copyJSON struct {
	Plan  domain.Plan       `json:"plan"`
	Units []domain.UnitSpec `json:"units"`
}

func wholeCents(ms ...domain.Money) bool {
	for _, m := range ms {
		if _, ok := centsOf(m); !ok {
			return false
		}
	}
	return true
}

func planInCents(p domain.Plan) bool {
	if !wholeCents(p.ListTotal, p.Price) {
		return false
	}
	for _, e := range p.Entitlements {
		if !wholeCents(e.ListPrice) {
			return false
		}
	}
	return unitsInCents(p.Units)
}

func unitsInCents(us []domain.UnitSpec) bool {
	for _, u := range us {
		if !wholeCents(u.ListPrice, u.Value) {
			return false
		}
	}
	return true
}

func appendCopy(b []byte, c *planCopy) ([]byte, error) {
	if !planInCents(c.plan) || !unitsInCents(c.units) {
		return b, fmt.Errorf("%w: plan %s has amounts that are not whole cents", ErrCannotCheckpoint, c.plan.Code)
	}
	j, err := json.Marshal(copyJSON{Plan: c.plan, Units: c.units})
	if err != nil {
		return b, fmt.Errorf("%w: plan %s: %w", ErrCannotCheckpoint, c.plan.Code, err)
	}
	b = wire.AppendString(b, string(j))
	return wire.AppendVarint(b, c.price), nil
}

// maxJSON bounds a plan's JSON in a checkpoint; a plan's limits keep a
// real one far below.
const maxJSON = 1 << 20

func readCopy(r *wire.Reader, ord int) *planCopy {
	j := r.String(maxJSON)
	price := r.Varint()
	if r.Err() != nil {
		return nil
	}
	var cj copyJSON
	if err := json.Unmarshal([]byte(j), &cj); err != nil {
		r.Fail(fmt.Errorf("plan copy %d: %w", ord, err))
		return nil
	}
	if len(cj.Units) > math.MaxUint16 {
		r.Fail(fmt.Errorf("plan copy %d has %d units", ord, len(cj.Units)))
		return nil
	}
	c := &planCopy{ord: ord, plan: cj.Plan, units: cj.Units, price: price, values: make([]int64, len(cj.Units))}
	if sameUnits(c.plan.Units, c.units) {
		c.units = c.plan.Units
	}
	for i, u := range c.units {
		c.values[i], _ = centsOf(u.Value) // whole cents: JSON amounts are
	}
	return c
}

func appendPlanState(b []byte, p domain.PlanState) ([]byte, error) {
	if !planInCents(p.Plan) {
		return b, fmt.Errorf("%w: plan %s has amounts that are not whole cents", ErrCannotCheckpoint, p.Plan.Code)
	}
	j, err := json.Marshal(p.Plan)
	if err != nil {
		return b, fmt.Errorf("%w: plan %s: %w", ErrCannotCheckpoint, p.Plan.Code, err)
	}
	b = wire.AppendString(b, string(j))
	b = wire.AppendString(b, string(p.Status))
	if b, err = appendTime(b, p.DefinedAt); err != nil {
		return b, err
	}
	b = wire.AppendBool(b, p.RetiredAt != nil)
	if p.RetiredAt != nil {
		if b, err = appendTime(b, *p.RetiredAt); err != nil {
			return b, err
		}
	}
	b = wire.AppendString(b, p.Reason)
	return wire.AppendUvarint(b, p.Seq), nil
}

func readPlanState(r *wire.Reader) domain.PlanState {
	var p domain.PlanState
	j := r.String(maxJSON)
	if r.Err() == nil {
		if err := json.Unmarshal([]byte(j), &p.Plan); err != nil {
			r.Fail(fmt.Errorf("plan: %w", err))
		}
	}
	p.Status = domain.PlanStatus(r.String(64))
	p.DefinedAt = readTime(r)
	if r.Bool() {
		t := readTime(r)
		p.RetiredAt = &t
	}
	p.Reason = r.String(1 << 16)
	p.Seq = r.Uvarint()
	return p
}

func appendPack(b []byte, pk *pack) ([]byte, error) {
	b = append(b, pk.id[:]...)
	b = wire.AppendUvarint(b, uint64(pk.plan.ord))
	b = wire.AppendUvarint(b, uint64(pk.party))
	b = wire.AppendUvarint(b, uint64(len(pk.text)))
	for _, c := range [5]int64{pk.paid, pk.voided, pk.recognized, pk.refunded, pk.breakage} {
		b = wire.AppendVarint(b, c)
	}
	b = wire.AppendVarint(b, pk.soldAt)
	b = append(b, pk.envLoc, pk.evLoc, pk.status, pk.flags)
	if pk.flags&hasActivated != 0 {
		b = wire.AppendVarint(b, pk.activatedAt)
	}
	if pk.flags&hasExpires != 0 {
		b = wire.AppendVarint(b, pk.expiresAt)
	}
	if pk.flags&hasExpired != 0 {
		b = wire.AppendVarint(b, pk.expiredAt)
	}
	b = wire.AppendUvarint(b, pk.seq)
	b = wire.AppendUvarint(b, uint64(len(pk.payments)))
	for i := range pk.payments {
		p := &pk.payments[i]
		b = append(b, p.id[:]...)
		b = wire.AppendVarint(b, p.amount)
		b = wire.AppendVarint(b, p.at-pk.soldAt)
		b = wire.AppendUvarint(b, uint64(p.ref))
		b = append(b, p.refLen)
		b = wire.AppendUvarint(b, uint64(p.cashier))
		b = wire.AppendUvarint(b, uint64(p.store))
		b = append(b, p.method)
		b = wire.AppendBool(b, p.voided)
	}
	b = wire.AppendUvarint(b, uint64(len(pk.redemptions)))
	for i := range pk.redemptions {
		x := &pk.redemptions[i]
		b = append(b, x.id[:]...)
		b = wire.AppendVarint(b, x.at-pk.soldAt)
		b = wire.AppendUvarint(b, uint64(x.ro))
		b = append(b, x.roLen)
		b = wire.AppendVarint(b, int64(x.mileage))
		b = wire.AppendUvarint(b, uint64(x.advisor))
		b = wire.AppendUvarint(b, uint64(x.unit))
		b = wire.AppendBool(b, x.reversed)
	}
	b = wire.AppendBool(b, pk.rare != nil)
	if pk.rare == nil {
		return b, nil
	}
	r := pk.rare
	b = wire.AppendBool(b, r.refund != nil)
	if f := r.refund; f != nil {
		cents := [4]int64{}
		for i, m := range [4]domain.Money{f.Amount, f.Fee, f.Recognized, f.Base} {
			c, ok := centsOf(m)
			if !ok {
				return b, fmt.Errorf("%w: a refund of package %s is not in whole cents", ErrCannotCheckpoint, pk.id)
			}
			cents[i] = c
		}
		for _, c := range cents {
			b = wire.AppendVarint(b, c)
		}
		b = wire.AppendString(b, f.Policy)
		b = wire.AppendString(b, string(f.Method))
		b = wire.AppendString(b, f.Reason)
		var err error
		if b, err = appendTime(b, f.RefundedAt); err != nil {
			return b, err
		}
	}
	b = wire.AppendUvarint(b, uint64(len(r.reasons)))
	for _, id := range sortedIDs(r.reasons) {
		b = append(b, id[:]...)
		b = wire.AppendString(b, r.reasons[id])
	}
	return b, nil
}

func sortedIDs(m map[uuid.UUID]string) []uuid.UUID {
	ids := make([]uuid.UUID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

// Bounds on what a checkpoint's strings may be; the domain's own limits
// are far below each.
const (
	maxName   = 1 << 12
	maxReason = 1 << 14
)

// decodeModel reads an encoded model. Everything that the model will later
// index by is checked against what it indexes, so that no checkpoint,
// however made, can make the model fail; a checkpoint is used whole or
// not at all.
func decodeModel(tz *time.Location, data []byte) (*Model, error) {
	r := wire.NewReader(data, ErrBadModel)
	if v := r.Byte(); v != modelFormat {
		return nil, r.Fail(fmt.Errorf("format %d, want %d", v, modelFormat))
	}
	if name := r.String(maxName); r.Err() == nil && name != tz.String() {
		return nil, r.Fail(fmt.Errorf("business days in %s, not %s", name, tz))
	}
	m := NewModel(tz)
	m.events = int(r.Uvarint())
	m.lastSeq = r.Uvarint()

	for range r.Count(1) {
		s := r.String(maxName)
		if r.Err() != nil {
			break
		}
		if _, dup := m.strs.ids[s]; dup {
			return nil, r.Fail(fmt.Errorf("the string %q twice", s))
		}
		m.strs.ids[s] = uint32(len(m.strs.strs))
		m.strs.strs = append(m.strs.strs, s)
	}
	nl := r.Count(1)
	if nl > 256 {
		return nil, r.Fail(fmt.Errorf("%d zones", nl))
	}
	for range nl {
		l := readLoc(r)
		if r.Err() != nil {
			break
		}
		if _, dup := m.locs.ids[l]; dup {
			return nil, r.Fail(fmt.Errorf("zone %s twice", l))
		}
		m.locs.id(l)
	}
	ns := len(m.strs.strs)
	for range r.Count(4) {
		p := party{uint32(r.Below(ns)), uint32(r.Below(ns)), uint32(r.Below(ns)), uint32(r.Below(ns))}
		if r.Err() != nil {
			break
		}
		if _, dup := m.parties.ids[p]; dup {
			return nil, r.Fail(errors.New("a sale party twice"))
		}
		m.partyOf(p)
	}
	for range r.Count(2) {
		c := readCopy(r, len(m.copies.list))
		if r.Err() != nil {
			break
		}
		m.copies.list = append(m.copies.list, c)
		m.copies.byCode[c.plan.Code] = append(m.copies.byCode[c.plan.Code], c)
	}
	for range r.Count(4) {
		p := readPlanState(r)
		if r.Err() != nil {
			break
		}
		if _, dup := m.plans[p.Plan.Code]; dup {
			return nil, r.Fail(fmt.Errorf("plan %s twice", p.Plan.Code))
		}
		m.plans[p.Plan.Code] = p
	}
	if err := r.Err(); err != nil {
		return nil, err
	}

	text := string(r.Bytes(int(r.Uvarint())))
	if err := m.readPacks(r, text); err != nil {
		return nil, err
	}
	// The indexes are built while the rest is read.
	dup := make(chan *uuid.UUID, 1)
	go func() { dup <- m.rebuildIndexes() }()
	defer func() { <-dup }() // on every return: nothing of m may be read by it then
	m.readLiability(r)
	m.readClose(r)
	for range r.Count(4) {
		f := Finding{Package: r.String(maxName), Seq: r.Uvarint(), Subject: r.String(maxName), Problem: r.String(maxReason)}
		m.findings = append(m.findings, f)
	}
	if err := r.End(); err != nil {
		return nil, err
	}
	if id := <-dup; id != nil {
		dup <- nil
		return nil, r.Fail(fmt.Errorf("package %s twice", *id))
	}
	dup <- nil
	return m, nil
}

// packMin is the fewest bytes a package, payment or redemption takes.
const (
	packMin       = 16 + 16
	paymentMin    = 16 + 9
	redemptionMin = 16 + 8
)

func (m *Model) readPacks(r *wire.Reader, text string) error {
	n := r.Count(packMin)
	pays := make([]payment, r.Count(paymentMin))
	reds := make([]redemption, r.Count(redemptionMin))
	if err := r.Err(); err != nil {
		return err
	}
	m.packs.Grow(n)
	m.byID.Reserve(n)
	off := 0
	for range n {
		var pk pack
		copy(pk.id[:], r.Bytes(16))
		pk.plan = m.copyAt(r)
		pk.party = uint32(r.Below(len(m.parties.list)))
		tl := r.Uvarint()
		if r.Err() == nil && tl > uint64(len(text)-off) {
			r.Fail(errors.New("a package's text beyond the text"))
		}
		if r.Err() != nil {
			return r.Err()
		}
		pk.text = text[off : off+int(tl)]
		off += int(tl)
		pk.paid, pk.voided, pk.recognized, pk.refunded, pk.breakage = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
		pk.soldAt = r.Varint()
		pk.envLoc, pk.evLoc, pk.status, pk.flags = r.Byte(), r.Byte(), r.Byte(), r.Byte()
		if pk.flags&hasActivated != 0 {
			pk.activatedAt = r.Varint()
		}
		if pk.flags&hasExpires != 0 {
			pk.expiresAt = r.Varint()
		}
		if pk.flags&hasExpired != 0 {
			pk.expiredAt = r.Varint()
		}
		pk.seq = r.Uvarint()
		np := r.Count(paymentMin)
		if r.Err() == nil && np > len(pays) {
			r.Fail(errors.New("more payments than the total"))
		}
		if r.Err() != nil {
			return r.Err()
		}
		if np > 0 {
			pk.payments, pays = pays[:np:np], pays[np:]
		}
		for i := range pk.payments {
			p := &pk.payments[i]
			copy(p.id[:], r.Bytes(16))
			p.amount = r.Varint()
			p.at = pk.soldAt + r.Varint()
			p.ref = uint32(r.Below(math.MaxUint32))
			p.refLen = r.Byte()
			p.cashier = uint32(r.Below(len(m.strs.strs)))
			p.store = uint32(r.Below(len(m.strs.strs)))
			p.method = uint8(r.Below(len(domain.PaymentMethods)))
			p.voided = r.Bool()
		}
		nr := r.Count(redemptionMin)
		if r.Err() == nil && nr > len(reds) {
			r.Fail(errors.New("more redemptions than the total"))
		}
		if r.Err() != nil {
			return r.Err()
		}
		if nr > 0 {
			pk.redemptions, reds = reds[:nr:nr], reds[nr:]
		}
		for i := range pk.redemptions {
			x := &pk.redemptions[i]
			copy(x.id[:], r.Bytes(16))
			x.at = pk.soldAt + r.Varint()
			x.ro = uint32(r.Below(math.MaxUint32))
			x.roLen = r.Byte()
			mileage := r.Varint()
			if mileage < math.MinInt32 || mileage > math.MaxInt32 {
				r.Fail(fmt.Errorf("mileage %d", mileage))
			}
			x.mileage = int32(mileage)
			x.advisor = uint32(r.Below(len(m.strs.strs)))
			x.unit = uint16(r.Below(math.MaxUint16 + 1))
			x.reversed = r.Bool()
		}
		if r.Bool() {
			pk.rare = m.readRare(r)
		}
		if err := r.Err(); err != nil {
			return err
		}
		if err := m.checkPack(&pk); err != nil {
			return r.Fail(fmt.Errorf("package %s: %w", pk.id, err))
		}
		m.packs.Append(pk)
	}
	if off != len(text) || len(pays) != 0 || len(reds) != 0 {
		return r.Fail(errors.New("the packages do not use all the text, payments and redemptions there are"))
	}
	return nil
}

// rebuildIndexes files every package as its sale did, each index in a
// goroutine of its own: they share nothing but the packages, which none
// changes. It returns a package id met twice, if any.
func (m *Model) rebuildIndexes() *uuid.UUID {
	n := m.packs.Len()
	for _, x := range []interface{ Reserve(int) }{m.byID, m.byVIN.idx, m.byPlate.idx, m.byCustomer.idx, m.byPhone.idx, m.sales.idx} {
		x.Reserve(n)
	}
	var dup *uuid.UUID
	build := []func(pos int32, pk *pack){
		func(pos int32, pk *pack) {
			if _, found := m.byID.GetOrPut(pk.id, pos); found && dup == nil {
				id := pk.id
				dup = &id
			}
		},
		func(pos int32, pk *pack) { m.byVIN.add(field(pk.text, fVIN), pos) },
		func(pos int32, pk *pack) { m.byPlate.add(normPlate(field(pk.text, fPlate)), pos) },
		func(pos int32, pk *pack) { m.byPhone.add(normPhone(field(pk.text, fPhone)), pos) },
		func(pos int32, pk *pack) {
			m.byCustomer.add(field(pk.text, fCustomerID), pos)
			if k := field(pk.text, fSaleKey); k != "" {
				m.sales.put(k, pos)
			}
		},
	}
	var wg sync.WaitGroup
	for _, f := range build {
		wg.Go(func() {
			for i := range n {
				f(int32(i), m.packs.At(i))
			}
		})
	}
	wg.Wait()
	return dup
}

func (m *Model) copyAt(r *wire.Reader) *planCopy {
	i := r.Below(len(m.copies.list))
	if r.Err() != nil {
		return nil
	}
	return m.copies.list[i]
}

func (m *Model) readRare(r *wire.Reader) *rare {
	x := &rare{}
	if r.Bool() {
		f := &domain.Refund{
			Amount: money(r.Varint()), Fee: money(r.Varint()), Recognized: money(r.Varint()), Base: money(r.Varint()),
			Policy: r.String(maxName), Method: domain.PaymentMethod(r.String(maxName)), Reason: r.String(maxReason),
		}
		f.RefundedAt = readTime(r)
		x.refund = f
	}
	if n := r.Count(17); n > 0 {
		x.reasons = make(map[uuid.UUID]string, n)
		for range n {
			var id uuid.UUID
			copy(id[:], r.Bytes(16))
			x.reasons[id] = r.String(maxReason)
		}
	}
	return x
}

// checkPack refuses a package that the compact form could not have left:
// whatever a pack's fields index must be there, and the compact form's
// own rules must hold, since applying the next event relies on them.
func (m *Model) checkPack(pk *pack) error {
	switch {
	case pk.status == stNone || pk.status >= stCount:
		return fmt.Errorf("status %d", pk.status)
	case pk.flags&^(hasActivated|hasExpires|hasExpired|hasEvLoc) != 0:
		return fmt.Errorf("flags %b", pk.flags)
	case int(pk.envLoc) >= len(m.locs.locs) || int(pk.evLoc) >= len(m.locs.locs):
		return errors.New("a zone beyond the table")
	case !wellFormedText(pk.text):
		return errors.New("its text does not hold a sale's fields")
	case overflows(pk):
		return errors.New("its liability does not fit")
	}
	if len(pk.payments) > 32 || len(pk.redemptions) > 32 {
		return checkMany(pk)
	}
	for i, p := range pk.payments {
		if uint64(p.ref)+uint64(p.refLen) > uint64(len(pk.text)) {
			return errors.New("a receipt beyond its text")
		}
		for _, q := range pk.payments[:i] {
			if q.id == p.id {
				return fmt.Errorf("payment %s twice", p.id)
			}
		}
	}
	for i, x := range pk.redemptions {
		switch {
		case uint64(x.ro)+uint64(x.roLen) > uint64(len(pk.text)):
			return errors.New("a repair order beyond its text")
		case int(x.unit) >= len(pk.plan.units):
			return fmt.Errorf("unit %d of %d", x.unit, len(pk.plan.units))
		}
		for _, y := range pk.redemptions[:i] {
			switch {
			case y.id == x.id:
				return fmt.Errorf("redemption %s twice", x.id)
			case !x.reversed && !y.reversed && x.unit == y.unit:
				return fmt.Errorf("unit %d redeemed twice", x.unit)
			}
		}
	}
	return nil
}

// checkMany is checkPack's loops for a package of many payments or
// redemptions, with maps where the loops would take quadratic time.
func checkMany(pk *pack) error {
	seen := map[uuid.UUID]bool{}
	for _, p := range pk.payments {
		if uint64(p.ref)+uint64(p.refLen) > uint64(len(pk.text)) {
			return errors.New("a receipt beyond its text")
		}
		if seen[p.id] {
			return fmt.Errorf("payment %s twice", p.id)
		}
		seen[p.id] = true
	}
	clear(seen)
	used := map[uint16]bool{}
	for _, x := range pk.redemptions {
		switch {
		case uint64(x.ro)+uint64(x.roLen) > uint64(len(pk.text)):
			return errors.New("a repair order beyond its text")
		case int(x.unit) >= len(pk.plan.units):
			return fmt.Errorf("unit %d of %d", x.unit, len(pk.plan.units))
		case seen[x.id]:
			return fmt.Errorf("redemption %s twice", x.id)
		case !x.reversed && used[x.unit]:
			return fmt.Errorf("unit %d redeemed twice", x.unit)
		}
		seen[x.id] = true
		used[x.unit] = used[x.unit] || !x.reversed
	}
	return nil
}

// wellFormedText reports whether text starts with a sale's fields, each
// its length and then its bytes, as appendField writes them.
func wellFormedText(text string) bool {
	for range textFields {
		var n uint64
		i := 0
		for shift := 0; ; shift += 7 {
			if i >= len(text) || shift > 28 {
				return false
			}
			c := text[i]
			i++
			n |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		if n > uint64(len(text)-i) {
			return false
		}
		text = text[i+int(n):]
	}
	return true
}

func (m *Model) readLiability(r *wire.Reader) {
	n := r.Count(3)
	l := m.liability
	l.at.Grow(n)
	l.amt.Grow(n)
	l.kind.Grow(n)
	at := int64(math.MinInt64)
	for i := range n {
		d := r.Uvarint()
		c := r.Varint()
		k := r.Byte()
		if r.Err() != nil {
			return
		}
		if k >= mvKinds || (i > 0 && d > uint64(math.MaxInt64-at)) {
			r.Fail(fmt.Errorf("roll-forward entry %d", i))
			return
		}
		at += int64(d)
		if i%blockSize == 0 {
			l.blocks.Append(l.total)
		}
		l.at.Append(at)
		l.amt.Append(c)
		l.kind.Append(k)
		l.total[k] = l.total[k].addCents(c)
	}
}

func (m *Model) readClose(r *wire.Reader) {
	ns := len(m.strs.strs)
	day := func() int32 {
		d := r.Varint()
		if d < math.MinInt32 || d > math.MaxInt32 {
			r.Fail(fmt.Errorf("day %d", d))
		}
		return int32(d)
	}
	for range r.Count(8) {
		k := lineKey{day: day(), store: uint32(r.Below(ns)), cashier: uint32(r.Below(ns)), method: uint32(r.Below(ns))}
		l := lineSums{payments: r.Varint(), voids: r.Varint()}
		l.payCount, l.voidCount = int32(r.Below(math.MaxInt32)), int32(r.Below(math.MaxInt32))
		if r.Err() != nil {
			return
		}
		if _, dup := m.close.lines[k]; dup {
			r.Fail(errors.New("a daily-close line twice"))
			return
		}
		m.close.lines[k] = l
	}
	for range r.Count(5) {
		k := refundKey{day: day(), store: uint32(r.Below(ns)), method: uint32(r.Below(ns))}
		x := refundSums{amount: r.Varint(), count: int32(r.Below(math.MaxInt32))}
		if r.Err() != nil {
			return
		}
		if _, dup := m.close.refunds[k]; dup {
			r.Fail(errors.New("a daily-close refund line twice"))
			return
		}
		m.close.refunds[k] = x
	}
}
