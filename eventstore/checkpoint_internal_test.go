package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// TestCheckpoints_Pieces: a checkpoint bigger than a piece is written as
// many, no piece spanning two parts, and read back as the parts it was
// given; of the checkpoints written, the newest few are kept, and the ones
// dropped leave nothing in the bucket, not even a delete marker.
func TestCheckpoints_Pieces(t *testing.T) {
	ctx := context.Background()
	ck, hist := sixEvents(t, "")
	require.Len(t, hist, 6)
	parts := [][]byte{bytes.Repeat([]byte("m"), 250), bytes.Repeat([]byte("f"), 30), {}}
	for _, env := range hist {
		require.NoError(t, ck.Save(ctx, env.Seq, env.Subject, env.Hash, parts...))
	}
	last := hist[len(hist)-1]

	infos, err := ck.obj.List(ctx, jetstream.ListObjectsShowDeleted())
	require.NoError(t, err)
	var names []string
	for _, i := range infos {
		require.False(t, i.Deleted, "%s: a delete marker left behind", i.Name)
		names = append(names, i.Name)
	}
	require.Len(t, names, 3*5, "three checkpoints, each a header and pieces of 100, 100, 50 and 30 bytes: %v", names)
	head := ck.objectName(last.Seq)
	for i, size := range []uint64{100, 100, 50, 30} {
		info, err := ck.obj.GetInfo(ctx, pieceName(head, i))
		require.NoError(t, err)
		require.Equal(t, size, info.Size, "piece %d", i)
	}

	// What a failed save or a kill mid-save leaves (pieces of a
	// checkpoint whose header never landed, a header of one dropped
	// since) goes at the next save.
	for _, stray := range []string{pieceName(ck.objectName(1), 0), pieceName(ck.objectName(1), 7), ck.objectName(2)} {
		_, err := ck.obj.PutBytes(ctx, stray, []byte("left behind"))
		require.NoError(t, err)
	}
	require.NoError(t, ck.Save(ctx, last.Seq, last.Subject, last.Hash, parts...))
	infos, err = ck.obj.List(ctx, jetstream.ListObjectsShowDeleted())
	require.NoError(t, err)
	require.Len(t, infos, 3*5, "the strays are gone, markers and all")
	for _, i := range infos {
		require.NotContains(t, i.Name, ck.objectName(1))
		require.NotEqual(t, ck.objectName(2), i.Name)
	}

	var got [][]byte
	var seq uint64
	used, err := ck.Load(ctx, func(s uint64, p [][]byte) error {
		seq, got = s, p
		return nil
	}, func(name string, err error) { t.Errorf("%s rejected: %v", name, err) })
	require.NoError(t, err)
	require.Equal(t, head, used)
	require.Equal(t, last.Seq, seq)
	require.Equal(t, parts, got)

	// A piece gone: that checkpoint is passed over for the next older.
	require.NoError(t, ck.obj.Delete(ctx, pieceName(head, 2)))
	var rejected []string
	used, err = ck.Load(ctx, func(uint64, [][]byte) error { return nil }, func(name string, err error) {
		rejected = append(rejected, name+": "+err.Error())
	})
	require.NoError(t, err)
	require.Equal(t, ck.objectName(hist[4].Seq), used)
	require.Len(t, rejected, 1)
	require.Contains(t, rejected[0], "piece 2: reading it")
}

// sixEvents is a ledger of one package with six events, one a command,
// and its checkpoints in pieces of 100 bytes, copied to local if not "".
func sixEvents(t *testing.T, local string) (*Checkpoints, []domain.Envelope) {
	t.Helper()
	st, _, signer := internalStore(t)
	ctx := context.Background()
	id := uuid.New()
	events := []domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("6.00")}}
	for i := range 5 {
		events = append(events, domain.PaymentRecorded{PaymentID: uuid.New(), Amount: domain.MustMoney("1.00"),
			Method: "cash", Receipt: fmt.Sprintf("R-%d", i)})
	}
	appendAll(t, st, id, events[:1], events[1:2], events[2:3], events[3:4], events[4:5], events[5:])
	ck, err := st.Checkpoints(ctx, CheckpointsConfig{Signer: signer, LocalCopy: local})
	require.NoError(t, err)
	ck.pieceSize = 100
	hist, err := st.Load(ctx, st.Subjects().Package(id.String()))
	require.NoError(t, err)
	return ck, hist
}

// TestCheckpoints_FailedSaveLeavesNothing: a save that cannot finish (its
// context ends while pieces are on their way) leaves no header, so no
// checkpoint that a start would try, and removes the pieces it wrote.
func TestCheckpoints_FailedSaveLeavesNothing(t *testing.T) {
	st, _, signer := internalStore(t)
	id := uuid.New()
	appendAll(t, st, id, []domain.Event{domain.PackageSold{PackageID: id, Price: domain.MustMoney("6.00")}})
	ctx := context.Background()
	ck, err := st.Checkpoints(ctx, CheckpointsConfig{Signer: signer})
	require.NoError(t, err)
	ck.pieceSize = 64 << 10
	hist, err := st.Load(ctx, st.Subjects().Package(id.String()))
	require.NoError(t, err)
	env := hist[0]

	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	err = ck.Save(short, env.Seq, env.Subject, env.Hash, bytes.Repeat([]byte("x"), 16<<20))
	require.Error(t, err, "16 MiB do not go in 5 ms")
	infos, err := ck.obj.List(ctx)
	if !errors.Is(err, jetstream.ErrNoObjectsFound) {
		require.NoError(t, err)
	}
	var left []string
	for _, i := range infos {
		left = append(left, i.Name)
	}
	require.Empty(t, left, "nothing of a failed checkpoint stays")
}
