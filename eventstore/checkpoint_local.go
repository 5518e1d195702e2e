package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// A server on its embedded NATS keeps a copy of its newest checkpoint in
// its data dir, beside the stream's files. A start reads and decodes the
// copy while nats-server is still recovering the stream (about a second
// for 5M events), instead of reading it through NATS after (1.3 s for a
// 293 MB checkpoint). The bucket stays the authority: the copy is used
// only if Vouch finds it the newest there is and everything a checkpoint
// in the bucket must be. With --nats there is no copy: servers of a
// cluster share the bucket, and any one of them may have written the
// newest checkpoint.

// localCopyMagic begins a local copy: then the length of the header (four
// bytes, big-endian), the header as the bucket keeps it, signed, and the
// body, the pieces one after the other.
const localCopyMagic = "packledger checkpoint copy 1\n"

// maxLocalHeader bounds a local copy's header: a header names a few dozen
// pieces.
const maxLocalHeader = 1 << 20

// LocalCheckpointPath is the file of the local copy of the checkpoints of
// stream and dealer, for a server whose data dir is dir. Neither a stream
// nor a dealer has a dot in its name.
func LocalCheckpointPath(dir, stream, dealer string) string {
	return filepath.Join(dir, "checkpoint."+stream+"."+dealer)
}

// LocalCheckpoint is a local copy of a checkpoint, read back. Nothing is
// known of it until the bucket vouches for it, not even that its body is
// the one its header names: its digests are checked then, while the
// parts are being decoded (which must refuse any bytes anyway), not
// before.
type LocalCheckpoint struct {
	h     checkpointHeader
	body  []byte
	parts [][]byte
}

// Name is the name of the checkpoint's header in the bucket.
func (l *LocalCheckpoint) Name() string { return checkpointName(l.h.Dealer, l.h.Seq) }

// Seq is the sequence the checkpoint covers the stream up to.
func (l *LocalCheckpoint) Seq() uint64 { return l.h.Seq }

// Parts are the checkpoint's contents, as Save was given them.
func (l *LocalCheckpoint) Parts() [][]byte { return l.parts }

// ReadLocalCheckpoint reads the local copy at path and checks that its
// body is as long as its header says. An error wraps fs.ErrNotExist if
// there is no copy.
func ReadLocalCheckpoint(path string) (*LocalCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCheckpoint+maxLocalHeader+int64(len(localCopyMagic))+4 {
		return nil, fmt.Errorf("checkpoint copy %s: %d bytes, too large", path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("checkpoint copy %s: %w", path, err)
	}
	l, err := parseLocalCopy(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint copy %s: %w", path, err)
	}
	return l, nil
}

func parseLocalCopy(b []byte) (*LocalCheckpoint, error) {
	rest, ok := bytes.CutPrefix(b, []byte(localCopyMagic))
	if !ok || len(rest) < 4 {
		return nil, errors.New("not a checkpoint copy")
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if n > maxLocalHeader || int(n) > len(rest) {
		return nil, fmt.Errorf("a header of %d bytes in %d", n, len(rest))
	}
	l := &LocalCheckpoint{}
	if err := json.Unmarshal(rest[:n], &l.h); err != nil {
		return nil, fmt.Errorf("its header: %w", err)
	}
	body := rest[n:]
	size, err := l.h.bodySize()
	if err != nil {
		return nil, err
	}
	if size != uint64(len(body)) {
		return nil, fmt.Errorf("its header names %d bytes, it holds %d", size, len(body))
	}
	l.body = body
	for _, n := range l.h.Parts {
		l.parts = append(l.parts, body[:n:n])
		body = body[n:]
	}
	return l, nil
}

// checkDigests checks each piece of the body against the digest the
// header names.
func (l *LocalCheckpoint) checkDigests() error {
	offsets := make([]uint64, len(l.h.Pieces))
	var off uint64
	for i, p := range l.h.Pieces {
		offsets[i] = off
		off += p.Size
	}
	return inParallel(context.Background(), len(l.h.Pieces), func(i int) error {
		p := l.h.Pieces[i]
		if objectDigest(l.body[offsets[i]:offsets[i]+p.Size]) != p.Digest {
			return fmt.Errorf("piece %d is not the one its header names (digest)", i)
		}
		return nil
	})
}

// objectDigest is the digest the object store names an object's body by.
func objectDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
}

// Vouch says whether the local copy l may be trusted as if Load had read
// it from the bucket: it must pass every check a checkpoint in the bucket
// must, and no checkpoint in the bucket may be newer.
func (c *Checkpoints) Vouch(ctx context.Context, l *LocalCheckpoint) error {
	if err := c.trustHeader(l.h); err != nil {
		return err
	}
	if err := l.checkDigests(); err != nil {
		return err
	}
	if err := c.matchStream(ctx, l.h); err != nil {
		return err
	}
	newest, err := c.newestName(ctx)
	if err != nil {
		return err
	}
	if newest > l.Name() {
		return fmt.Errorf("the bucket has a newer checkpoint, %s", newest)
	}
	return nil
}

// newestName is the name of the dealer's newest checkpoint in the bucket,
// "" if there is none. It does not List: the object store lists through a
// consumer of the last message per subject, and for that nats-server
// loads the bucket's blocks, chunks and all (0.4 s with three checkpoints
// of 293 MB, at a start, when every core is busy). The stream's count of
// messages per subject comes from its index, in memory; the object
// store keeps each object's metadata on a subject of its own (ADR-20).
func (c *Checkpoints) newestName(ctx context.Context) (string, error) {
	stream, err := c.st.js.Stream(ctx, "OBJ_"+c.bucket)
	if err != nil {
		return "", fmt.Errorf("checkpoints: %w", err)
	}
	prefix := "$O." + c.bucket + ".M."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return "", fmt.Errorf("checkpoints: %w", err)
	}
	var names []string
	for subject := range info.State.Subjects {
		b, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(subject, prefix))
		if rest, ok := c.dealerObject(string(b)); err == nil && ok && len(rest) == 20 {
			names = append(names, string(b))
		}
	}
	slices.Sort(names)
	for _, name := range slices.Backward(names) {
		// A subject is left of a deleted object until its marker goes.
		_, err := c.obj.GetInfo(ctx, name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("checkpoint %s: %w", name, err)
		}
		return name, nil
	}
	return "", nil
}

// writeLocalCopy replaces the local copy at path by one of the checkpoint
// whose signed header is meta, whole or not at all: a copy cut short by a
// crash would be refused at start (its digests), but would cost a read.
func writeLocalCopy(path string, meta []byte, parts [][]byte) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	head := binary.BigEndian.AppendUint32([]byte(localCopyMagic), uint32(len(meta)))
	for _, b := range append([][]byte{head, meta}, parts...) {
		if _, err := f.Write(b); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename itself, through a crash.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
