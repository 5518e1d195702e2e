package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// TestGroupCommit_SplitsAroundTheFaulty: one atomic batch carries the
// commands of many; a command whose expected sequence no longer holds, or
// whose message id JetStream already stored, fails alone, and every other
// command of its batch lands, with the sequences it was told, against the
// real server.
func TestGroupCommit_SplitsAroundTheFaulty(t *testing.T) {
	st, _, _ := internalStore(t)
	ctx := context.Background()
	meta := Meta{Store: "main", Actor: domain.Actor{ID: "m", Role: domain.RoleManager}}
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	message := func(code string, expect uint64, msgID string) Outgoing {
		_, o, err := st.envelope(st.Subjects().Plan(code), code, "", meta, at, domain.PlanRetired{Code: code, Reason: "test"})
		require.NoError(t, err)
		o.Expect, o.MsgID = &expect, msgID
		return o
	}
	first, err := st.Append(ctx, []Outgoing{message("TAKEN", 0, "key-1")})
	require.NoError(t, err)

	const n = 41
	conflict, duplicate, double := 17, 30, 5
	batch := make([]*pendingAppend, n)
	for i := range batch {
		code := fmt.Sprintf("G%02d", i)
		msgs := []Outgoing{message(code, 0, "")}
		switch i {
		case conflict:
			msgs = []Outgoing{message(code, 3, "")} // the subject is empty, not at 3
		case duplicate:
			msgs = []Outgoing{message(code, 0, "key-1")}
		case double: // a command of two messages stays whole
			msgs = append(msgs, message(code+"B", 0, ""))
		}
		batch[i] = &pendingAppend{msgs: msgs, done: make(chan struct{})}
	}
	g := newGroupCommit(st, GroupCommitAlways)
	g.send(ctx, batch)

	for i, p := range batch {
		<-p.done
		var dup *DuplicateError
		switch i {
		case conflict:
			require.ErrorIs(t, p.err, ErrConflict)
		case duplicate:
			require.ErrorAs(t, p.err, &dup)
			require.Equal(t, first[0], dup.Seq, "the duplicate names where the first copy is")
		default:
			require.NoError(t, p.err, "command %d", i)
			require.Len(t, p.seqs, len(p.msgs))
			for k, seq := range p.seqs {
				got, err := st.Get(ctx, seq)
				require.NoError(t, err)
				require.Equal(t, p.msgs[k].Subject, got.Subject, "command %d message %d", i, k)
				require.Equal(t, p.msgs[k].Hash, got.Hash)
			}
		}
	}
	last, err := st.LastSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, first[0]+n-2+1, last, "every command but two landed, one of them with two messages")
	require.Greater(t, g.appends.Load(), int64(2), "the batch was split")
	require.Less(t, g.appends.Load(), int64(n), "but not into single commands")
}

// TestGroupCommit_TransportFailureTellsEveryone: when JetStream cannot be
// reached the outcome is unknown for every command of the batch: none is
// told it failed for its own sake, and none is split off and sent alone.
func TestGroupCommit_TransportFailureTellsEveryone(t *testing.T) {
	st, nc, _ := internalStore(t)
	meta := Meta{Store: "main", Actor: domain.Actor{ID: "m", Role: domain.RoleManager}}
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	batch := make([]*pendingAppend, 20)
	for i := range batch {
		code := fmt.Sprintf("T%02d", i)
		_, o, err := st.envelope(st.Subjects().Plan(code), code, "", meta, at, domain.PlanRetired{Code: code, Reason: "test"})
		require.NoError(t, err)
		batch[i] = &pendingAppend{msgs: []Outgoing{o}, done: make(chan struct{})}
	}
	nc.Close()
	g := newGroupCommit(st, GroupCommitAlways)
	g.send(context.Background(), batch)
	for _, p := range batch {
		<-p.done
		require.Error(t, p.err)
		require.False(t, commandsFault(p.err), "not a command's fault: %v", p.err)
		require.False(t, errors.Is(p.err, ErrConflict))
	}
	require.Equal(t, int64(1), g.appends.Load(), "sent once, not split")
}
