// Package handlers serves packledger's HTTP API (DESIGN.md §5): bearer
// authentication against the users file, the role matrix, strict JSON in
// and out, and one place, writeError, where domain errors become status
// codes. Writes go through the event store's Update; reads come from the
// projections, and a write's answer waits until the projections hold it.
package handlers
