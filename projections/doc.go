// Package projections folds the ledger's events into the read models the
// API serves: packages (with look-up by VIN, plate and customer), plans,
// prepaid accounts, the liability roll-forward and the daily close.
//
// Every model is a deterministic fold over events in stream order: the
// same events always give the same models, which is what lets a restart
// rebuild them from the log and an auditor recompute them. The Runner that
// feeds the fold from the stream is separate, and knows the stream only
// through the small Source interface.
package projections
