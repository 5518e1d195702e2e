// Package domain holds packledger's business rules: money, plans, the unit
// allocation, and the package aggregate as two pure functions (Decide a
// command against a state, Apply an event to a state).
//
// It knows nothing of NATS or HTTP: the event store persists what Decide
// returns, the projections fold what Apply folds, and the handlers turn
// domain errors into status codes. Everything here is deterministic given
// its inputs, including the clock, which callers pass in.
package domain
