package eventstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/packledger/packledger/domain"
)

// Import is the whole history of one aggregate that is new to the ledger,
// such as a package a dealer sold before it used packledger: the commands
// it went through, in order, each as Update would have appended it.
type Import struct {
	// Subject is the aggregate's subject; it must hold nothing yet.
	Subject  string
	Commands []ImportCommand
}

// ImportCommand is one decided command of an imported history: its change
// (events, and claims such as a payment's receipt), who made it and when.
type ImportCommand struct {
	Meta   Meta
	At     time.Time
	Change Change
}

// BulkResult is what BulkAppend stored: its first Aggregates imports,
// whole, in Messages messages (events and claims), the last at LastSeq.
type BulkResult struct {
	Aggregates int
	Messages   int
	LastSeq    uint64
}

// MaxBulkBatch is the most messages BulkAppend puts in one atomic batch:
// JetStream's own limit on an atomic batch. An aggregate's history, claims
// included, must fit in one.
const MaxBulkBatch = 1000

// BulkAppend appends the histories of aggregates that the caller asserts
// are new, many in one JetStream atomic batch: an import of existing
// packages, or a benchmark's data, where one Update per command would take
// hours. Each history is chained and signed exactly as Update would have
// written it command by command, claims first within each command, and its
// first message on each subject expects that subject to be empty
// (sequence 0), so that JetStream refuses a batch that would fork a
// subject already written.
//
// Every import is checked and built before anything is sent: bad input (a
// subject that is not this dealer's or not the events' own, a subject
// named twice, a command without events, a history longer than a batch)
// is an error and appends nothing. Batches are then committed one after
// another, each all or nothing; when one fails, the result says how many
// whole imports, from the first, are stored, and the error wraps
// ErrConflict if a subject was not new after all. BulkAppend does not
// check idempotency keys against what is stored, nor decide anything: the
// events are the caller's, decided with the domain.
func (s *Store) BulkAppend(ctx context.Context, imports []Import) (BulkResult, error) {
	if s.signer == nil {
		return BulkResult{}, errors.New("eventstore: this store has no signing key and cannot write")
	}
	if err := s.checkImports(imports); err != nil {
		return BulkResult{}, err
	}
	built, err := s.buildImports(imports)
	if err != nil {
		return BulkResult{}, err
	}
	var res BulkResult
	for start := 0; start < len(built); {
		end, n := start, 0
		for end < len(built) && n+len(built[end]) <= MaxBulkBatch {
			n += len(built[end])
			end++
		}
		batch := make([]Outgoing, 0, n)
		for _, msgs := range built[start:end] {
			batch = append(batch, msgs...)
		}
		seqs, err := s.appendBatch(ctx, batch)
		if err != nil {
			return res, fmt.Errorf("bulk append of imports %d to %d: %w", start, end-1, err)
		}
		res.Aggregates, res.Messages, res.LastSeq = end, res.Messages+n, seqs[len(seqs)-1]
		start = end
	}
	return res, nil
}

// checkImports refuses what no history of new aggregates can be.
func (s *Store) checkImports(imports []Import) error {
	prefix := "ledger." + s.subjects.Dealer + "."
	seen := make(map[string]int, len(imports))
	taken := func(subject string, i int) error {
		if j, ok := seen[subject]; ok {
			return fmt.Errorf("import %d: subject %s is already written by import %d", i, subject, j)
		}
		seen[subject] = i
		return nil
	}
	for i, im := range imports {
		if !strings.HasPrefix(im.Subject, prefix) {
			return fmt.Errorf("import %d: subject %q is not one of dealer %s", i, im.Subject, s.subjects.Dealer)
		}
		if err := taken(im.Subject, i); err != nil {
			return err
		}
		if len(im.Commands) == 0 {
			return fmt.Errorf("import %d (%s): no commands", i, im.Subject)
		}
		n := 0
		for k, c := range im.Commands {
			if len(c.Change.Events) == 0 {
				return fmt.Errorf("import %d (%s): command %d has no events", i, im.Subject, k)
			}
			claimed := map[uuid.UUID]bool{}
			for _, cl := range c.Change.Claims {
				rc, ok := cl.Event.(domain.ReceiptClaimed)
				if !ok || cl.Subject != s.subjects.Receipt(rc.Receipt) {
					return fmt.Errorf("import %d (%s): command %d: a claim on %q must be the ReceiptClaimed of that receipt", i, im.Subject, k, cl.Subject)
				}
				if err := taken(cl.Subject, i); err != nil {
					return err
				}
				claimed[rc.PaymentID] = true
			}
			for _, ev := range c.Change.Events {
				// Readers take a payment without its receipt's claim for
				// a forgery (Chains): refuse it here, not there.
				if p, ok := ev.(domain.PaymentRecorded); ok && !claimed[p.PaymentID] {
					return fmt.Errorf("import %d (%s): command %d: payment %s comes without the claim of receipt %s", i, im.Subject, k, p.PaymentID, p.Receipt)
				}
			}
			n += len(c.Change.Events) + len(c.Change.Claims)
		}
		if n > MaxBulkBatch {
			return fmt.Errorf("import %d (%s): %d messages, more than one atomic batch holds (%d)", i, im.Subject, n, MaxBulkBatch)
		}
	}
	return nil
}

// buildImports builds every import's messages, on every core: signing is
// most of the cost.
func (s *Store) buildImports(imports []Import) ([][]Outgoing, error) {
	built := make([][]Outgoing, len(imports))
	errs := make([]error, len(imports))
	workers := min(runtime.GOMAXPROCS(0), len(imports))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(imports); i += workers {
				built[i], errs[i] = s.buildImport(imports[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("import %d (%s): %w", i, imports[i].Subject, err)
		}
	}
	return built, nil
}

// buildImport chains one history's commands as successive Updates would:
// each command's events onto the last one's, its claims before them. Only
// the first message on each subject names an expected sequence: JetStream
// allows none on a subject the batch has already written, and the batch
// is atomic.
func (s *Store) buildImport(im Import) ([]Outgoing, error) {
	var (
		out  []Outgoing
		last Subject
	)
	for k, c := range im.Commands {
		msgs, appended, err := s.build(im.Subject, last, c.Meta, c.At, c.Change, make([]uint64, len(c.Change.Claims)))
		if err != nil {
			return nil, err
		}
		for _, env := range appended {
			if want, err := CanonicalSubject(env); err != nil || want != im.Subject {
				return nil, fmt.Errorf("command %d: a %s of %q does not belong on %s", k, env.Type, env.Aggregate, im.Subject)
			}
		}
		if k > 0 {
			msgs[len(c.Change.Claims)].Expect = nil
		}
		out = append(out, msgs...)
		last.Events = appended[len(appended)-1:]
	}
	return out, nil
}
