// Package eventstore keeps packledger's events on NATS JetStream: it starts
// the embedded server, sets up the LEDGER stream, encodes envelopes into
// messages with their per-aggregate hash chain, appends them under
// per-subject optimistic concurrency, loads one aggregate's subject, and
// follows the whole stream for the projections.
//
// Update is the one way commands reach the log: load, decide, append with
// the expected subject sequence, retry on conflict, and recognise a retried
// request by its idempotency key. BulkAppend is the other, for histories
// decided elsewhere (an import of existing packages, a benchmark's data):
// aggregates new to the log, chained and signed as Update would, in large
// atomic batches.
package eventstore
