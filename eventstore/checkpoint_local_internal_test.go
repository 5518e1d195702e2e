package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/packledger/packledger/domain"
)

// localCopyLedger is sixEvents with a local copy, and the copy's file.
func localCopyLedger(t *testing.T) (*Checkpoints, []domain.Envelope, string) {
	t.Helper()
	path := LocalCheckpointPath(t.TempDir(), "LEDGER", "demo")
	ck, hist := sixEvents(t, path)
	return ck, hist, path
}

// TestCheckpoints_LocalCopy: Save keeps a copy of the newest checkpoint
// in a file, which reads back as the parts it was given and which the
// bucket vouches for, until a newer checkpoint is in the bucket.
func TestCheckpoints_LocalCopy(t *testing.T) {
	ck, hist, path := localCopyLedger(t)
	ctx := context.Background()
	_, err := ReadLocalCheckpoint(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "no copy before the first checkpoint")

	parts := [][]byte{bytes.Repeat([]byte("m"), 250), bytes.Repeat([]byte("f"), 30), {}}
	at := hist[4]
	require.NoError(t, ck.Save(ctx, at.Seq, at.Subject, at.Hash, parts...))
	l, err := ReadLocalCheckpoint(path)
	require.NoError(t, err)
	require.Equal(t, ck.objectName(at.Seq), l.Name())
	require.Equal(t, at.Seq, l.Seq())
	require.Equal(t, parts, l.Parts())
	require.NoError(t, ck.Vouch(ctx, l))
	_, err = os.Stat(path + ".tmp")
	require.ErrorIs(t, err, fs.ErrNotExist, "no temporary file left")

	// A newer checkpoint in the bucket, written by a server without a
	// copy: the old copy is passed over.
	noCopy := *ck
	noCopy.local = ""
	last := hist[5]
	require.NoError(t, noCopy.Save(ctx, last.Seq, last.Subject, last.Hash, parts...))
	require.ErrorContains(t, ck.Vouch(ctx, l), "the bucket has a newer checkpoint, "+ck.objectName(last.Seq))
	// Deleted, with its delete marker left (a removal cut short): gone.
	require.NoError(t, ck.obj.Delete(ctx, ck.objectName(last.Seq)))
	require.NoError(t, ck.Vouch(ctx, l))

	// Its own next save replaces the copy.
	require.NoError(t, ck.Save(ctx, last.Seq, last.Subject, last.Hash, parts[:1]...))
	l, err = ReadLocalCheckpoint(path)
	require.NoError(t, err)
	require.Equal(t, last.Seq, l.Seq())
	require.Equal(t, parts[:1], l.Parts())
	require.NoError(t, ck.Vouch(ctx, l))
}

// TestCheckpoints_LocalCopyUntrusted: a copy that is cut short, altered or
// not a copy at all is refused on reading; one whose body or header was
// changed, or that does not match the stream, is read but not vouched
// for.
func TestCheckpoints_LocalCopyUntrusted(t *testing.T) {
	ck, hist, path := localCopyLedger(t)
	ctx := context.Background()
	parts := [][]byte{bytes.Repeat([]byte("m"), 250), bytes.Repeat([]byte("f"), 30)}
	at := hist[5]
	require.NoError(t, ck.Save(ctx, at.Seq, at.Subject, at.Hash, parts...))
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	headerLen := int(binary.BigEndian.Uint32(good[len(localCopyMagic):]))
	headerAt := len(localCopyMagic) + 4
	// withHeader is the copy with its header changed by edit, as anyone
	// who can write the data dir could.
	withHeader := func(edit func(h *checkpointHeader)) []byte {
		var h checkpointHeader
		require.NoError(t, json.Unmarshal(good[headerAt:headerAt+headerLen], &h))
		edit(&h)
		meta, err := json.Marshal(h)
		require.NoError(t, err)
		b := binary.BigEndian.AppendUint32([]byte(localCopyMagic), uint32(len(meta)))
		return append(append(b, meta...), good[headerAt+headerLen:]...)
	}
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x20
		return b
	}
	for _, c := range []struct {
		name    string
		content []byte
		read    string // what reading it says; "" if it reads
		vouch   string // what Vouch says of what reads
	}{
		{"Empty", nil, "not a checkpoint copy", ""},
		{"OtherMagic", append([]byte("packledger checkpoint copy 9\n"), good[len(localCopyMagic):]...), "not a checkpoint copy", ""},
		{"HeaderCutShort", good[:headerAt+headerLen/2], "a header of", ""},
		{"HeaderNotJSON", flip(headerAt), "its header", ""},
		{"BodyCutShort", good[:len(good)-1], "it holds 279", ""},
		{"BodyLonger", append(bytes.Clone(good), 'x'), "it holds 281", ""},
		{"BodyAltered", flip(len(good) - 40), "", "piece 2 is not the one its header names"},
		{"PartsDisagree", withHeader(func(h *checkpointHeader) { h.Parts = []uint64{100, 100} }), "its parts make 200 bytes", ""},
		{"SeqChanged", withHeader(func(h *checkpointHeader) { h.Seq-- }), "", "signature"},
		{"OtherDealer", withHeader(func(h *checkpointHeader) { h.Dealer = "other" }), "", "dealer other"},
		{"OtherFormat", withHeader(func(h *checkpointHeader) { h.Format = 1 }), "", "format 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, c.content, 0o600))
			l, err := ReadLocalCheckpoint(path)
			if c.read != "" {
				require.ErrorContains(t, err, c.read)
				require.Nil(t, l)
				return
			}
			require.NoError(t, err)
			require.ErrorContains(t, ck.Vouch(ctx, l), c.vouch)
		})
	}

	// A copy of a checkpoint the stream does not hold: a ledger that
	// started over on the same data dir, or a copy brought from another.
	require.NoError(t, os.WriteFile(path, good, 0o600))
	other, _, _ := localCopyLedger(t)
	other.st.ring, other.st.stream = ck.st.ring, ck.st.stream // the same key and names, another stream
	l, err := ReadLocalCheckpoint(path)
	require.NoError(t, err)
	require.ErrorContains(t, other.Vouch(ctx, l), fmt.Sprintf("seq %d is on", at.Seq))
}

// TestCheckpoints_LocalCopyNotWritten: a copy that cannot be written does
// not fail the checkpoint, which is in the bucket, and leaves no stale
// copy behind to be read at the next start.
func TestCheckpoints_LocalCopyNotWritten(t *testing.T) {
	ck, hist, path := localCopyLedger(t)
	ctx := context.Background()
	at := hist[4]
	require.NoError(t, ck.Save(ctx, at.Seq, at.Subject, at.Hash, []byte("model"), []byte("feed")))
	require.FileExists(t, path)
	// The temporary file cannot be made: a directory is in its way.
	require.NoError(t, os.Mkdir(path+".tmp", 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(path+".tmp", "x"), nil, 0o600))
	last := hist[5]
	require.NoError(t, ck.Save(ctx, last.Seq, last.Subject, last.Hash, []byte("model"), []byte("feed")))
	require.NoFileExists(t, path)
	names, err := ck.names(ctx)
	require.NoError(t, err)
	require.Equal(t, ck.objectName(last.Seq), names[0])
}

// FuzzParseLocalCopy: no input makes reading a local copy panic; what it
// accepts has a body that is its parts, one after the other, and written
// again reads back the same.
func FuzzParseLocalCopy(f *testing.F) {
	parts := [][]byte{bytes.Repeat([]byte("m"), 150), []byte("feed")}
	h := checkpointHeader{Format: checkpointFormat, Stream: "LEDGER", Dealer: "demo", Seq: 7, Parts: []uint64{150, 4}}
	for _, p := range [][]byte{parts[0][:100], parts[0][100:], parts[1]} {
		h.Pieces = append(h.Pieces, checkpointPiece{Size: uint64(len(p)), Digest: objectDigest(p)})
	}
	meta, err := json.Marshal(h)
	require.NoError(f, err)
	path := filepath.Join(f.TempDir(), "copy")
	require.NoError(f, writeLocalCopy(path, meta, parts))
	good, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(localCopyMagic + "\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLocalCopy(b)
		if err != nil {
			return
		}
		var body []byte
		for _, p := range l.parts {
			body = append(body, p...)
		}
		if !bytes.HasSuffix(b, body) {
			t.Fatal("its parts are not its body")
		}
		meta, err := json.Marshal(l.h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "copy")
		if err := writeLocalCopy(path, meta, l.parts); err != nil {
			t.Fatal(err)
		}
		again, err := ReadLocalCheckpoint(path)
		if err != nil {
			t.Fatalf("written again, it does not read: %v", err)
		}
		if !equalParts(again.parts, l.parts) {
			t.Fatal("written again, it reads back other parts")
		}
	})
}

func equalParts(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
