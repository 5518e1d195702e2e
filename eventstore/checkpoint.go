package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Checkpoints keeps the read models' checkpoints in a JetStream object
// store beside the ledger's stream, named by dealer and sequence, the
// newest few kept. A checkpoint is derived data: it may be replaced or
// lost, and the ledger rebuilt from the stream.
//
// A checkpoint is one header object, written last, and the pieces of its
// body, each an object of its own. The object store publishes an object's
// chunks without waiting for each, and a stream queues at most 128 MiB of
// them (nats-server's default): a checkpoint of a few hundred thousand
// packages put as one object was refused with 429 too many requests. In
// pieces, a few at a time, the bytes in flight stay bounded, and a start
// reads them back in parallel.
//
// Others may write to the bucket, so one is trusted only if it matches
// the stream it claims to cover: the format, stream, dealer and keyring
// it was made for, a sequence no later than the stream's head, the
// message stored there with the subject and hash the checkpoint names,
// pieces of the sizes and SHA-256 digests named, and all of it signed by
// the ledger's key.
type Checkpoints struct {
	st     *Store
	obj    jetstream.ObjectStore
	bucket string
	signer *Signer
	local  string // the file of the local copy; "" for none
	log    *slog.Logger
	keep   int
	// pieceSize is the most bytes of a piece.
	pieceSize int
}

// checkpointFormat versions the header; another is not trusted. Format 1
// kept the body in the header's own object.
const checkpointFormat = 2

// checkpointMeta is the metadata key of a checkpoint's header.
const checkpointMeta = "packledger-checkpoint"

const (
	// checkpointChunk is the object store's chunk size: the largest that
	// fits a NATS message, so that a checkpoint of a million packages is
	// a few hundred fsynced writes, not thousands.
	checkpointChunk = 768 << 10
	// checkpointPieceSize is the size of a piece: a handful of chunks each,
	// so that checkpointFlight pieces keep well under the stream's queue.
	checkpointPieceSize = 8 << 20
	// checkpointFlight is the most pieces written or read at once.
	checkpointFlight = 4
)

// checkpointHeader is what a checkpoint claims, and what its signature
// covers (all of it but Sig).
type checkpointHeader struct {
	Format  int    `json:"format"`
	Stream  string `json:"stream"`
	Dealer  string `json:"dealer"`
	Keyring string `json:"keyring"`
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Hash    string `json:"hash"`
	// Parts are the lengths of the parts Save was given, which the pieces
	// hold one after the other.
	Parts   []uint64          `json:"parts"`
	Pieces  []checkpointPiece `json:"pieces"`
	Created time.Time         `json:"created"`
	KeyID   string            `json:"key_id"`
	Sig     string            `json:"sig,omitempty"`
}

// checkpointPiece is one piece of a checkpoint's body, as the object
// store digests it.
type checkpointPiece struct {
	Size   uint64 `json:"size"`
	Digest string `json:"digest"`
}

// signedHash is the hex SHA-256 of the header without its signature.
func (h checkpointHeader) signedHash() string {
	h.Sig = ""
	b, _ := json.Marshal(h)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var bucketPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// CheckpointsConfig is what Store.Checkpoints needs.
type CheckpointsConfig struct {
	// Signer signs what Save writes.
	Signer *Signer
	// LocalCopy, if set, is the file (LocalCheckpointPath) where Save
	// also keeps a copy of the newest checkpoint, for a start to read
	// before NATS is up: a server on its embedded NATS sets it.
	LocalCopy string
	// Log is told of a local copy that could not be written; nil: no one.
	Log *slog.Logger
}

// Checkpoints opens the bucket of the store's checkpoints, creating it on
// first use with the stream's replicas.
func (s *Store) Checkpoints(ctx context.Context, cfg CheckpointsConfig) (*Checkpoints, error) {
	bucket := s.stream + "_checkpoints"
	if !bucketPattern.MatchString(bucket) {
		return nil, fmt.Errorf("checkpoints: stream %q makes no bucket name", s.stream)
	}
	replicas := 1
	if info, err := s.Info(ctx); err == nil {
		replicas = info.Config.Replicas
	}
	obj, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "packledger: checkpoints of the read models of stream " + s.stream,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints bucket %s: %w", bucket, err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checkpoints{st: s, obj: obj, bucket: bucket, signer: cfg.Signer, local: cfg.LocalCopy, log: log,
		keep: 3, pieceSize: checkpointPieceSize}, nil
}

// ringFingerprint names the set of trusted keys: chains judged under
// another set would have judged differently.
func ringFingerprint(r *Keyring) string {
	sum := sha256.Sum256([]byte(strings.Join(r.Keys(), "\n")))
	return hex.EncodeToString(sum[:])
}

func (c *Checkpoints) objectName(seq uint64) string {
	return checkpointName(c.st.subjects.Dealer, seq)
}

// checkpointName names the header of dealer's checkpoint at seq; the
// sequence has all its digits, so that names sort as sequences do.
func checkpointName(dealer string, seq uint64) string {
	return fmt.Sprintf("%s.%020d", dealer, seq)
}

func pieceName(header string, i int) string {
	return fmt.Sprintf("%s.%04d", header, i)
}

// Save writes a checkpoint covering the stream up to seq, where the
// message on subject has the given hash; parts are the checkpoint's
// contents, read back by Load as they were. It then drops all but the
// newest few of the dealer's checkpoints.
func (c *Checkpoints) Save(ctx context.Context, seq uint64, subject, hash string, parts ...[]byte) error {
	if seq == 0 || hash == "" || c.signer == nil {
		return errors.New("checkpoint: nothing to cover, or no key to sign with")
	}
	h := checkpointHeader{
		Format: checkpointFormat, Stream: c.st.stream, Dealer: c.st.subjects.Dealer, Keyring: ringFingerprint(c.st.ring),
		Seq: seq, Subject: subject, Hash: hash, Created: time.Now().UTC(),
	}
	// A piece never spans two parts, so that each is a slice of one.
	var pieces [][]byte
	for _, p := range parts {
		h.Parts = append(h.Parts, uint64(len(p)))
		for len(p) > 0 {
			k := min(len(p), c.pieceSize)
			pieces, p = append(pieces, p[:k]), p[k:]
		}
	}
	name := c.objectName(seq)
	h.Pieces = make([]checkpointPiece, len(pieces))
	err := inParallel(ctx, len(pieces), func(i int) error {
		info, err := c.obj.Put(ctx, jetstream.ObjectMeta{
			Name: pieceName(name, i), Description: fmt.Sprintf("piece %d of %d of checkpoint %s", i+1, len(pieces), name),
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: checkpointChunk},
		}, bytes.NewReader(pieces[i]))
		if err != nil {
			return fmt.Errorf("checkpoint %s, piece %d: %w", name, i, err)
		}
		h.Pieces[i] = checkpointPiece{Size: info.Size, Digest: info.Digest}
		return nil
	})
	if err != nil {
		c.dropFailed(ctx, name, len(pieces))
		return err
	}
	h.KeyID = c.signer.id // signed too
	h.Sig, _ = c.signer.Sign(h.signedHash())
	meta, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("checkpoint header: %w", err)
	}
	_, err = c.obj.Put(ctx, jetstream.ObjectMeta{
		Name: name, Description: fmt.Sprintf("read models of dealer %s up to seq %d, in %d pieces", h.Dealer, seq, len(pieces)),
		Metadata: map[string]string{checkpointMeta: string(meta)},
	}, bytes.NewReader(nil))
	if err != nil {
		c.dropFailed(ctx, name, len(pieces))
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if c.local != "" {
		// Only once the bucket has it: the copy is never the newer.
		if err := writeLocalCopy(c.local, meta, parts); err != nil {
			// A stale copy would be read at every start only to be
			// passed over for the newer one in the bucket.
			_ = os.Remove(c.local)
			c.log.Warn("checkpoint: its local copy could not be written; the next start reads it from NATS",
				"checkpoint", name, "err", err)
		}
	}
	c.prune(ctx)
	return nil
}

// dropTimeout bounds the removal of a checkpoint that failed, whose own
// context may have ended.
const dropTimeout = 30 * time.Second

// dropFailed removes what a failed Save may have left of checkpoint name:
// its header and every one of its n pieces. A Put that fails does not
// always remove its own object (nats.go leaves it when the context ends
// while it waits for the acks), so all are deleted, not only those known
// to be written.
func (c *Checkpoints) dropFailed(ctx context.Context, name string, n int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	objects := []string{name}
	for i := range n {
		objects = append(objects, pieceName(name, i))
	}
	c.remove(ctx, objects)
}

// prune drops all but the newest few of the dealer's checkpoints, and any
// piece whose header is not one of those kept: the leftovers of a save
// that failed, or of a process killed while writing one. Headers go
// first, so that no one trusts a checkpoint while its pieces go.
func (c *Checkpoints) prune(ctx context.Context) {
	infos, err := c.list(ctx, true)
	if err != nil {
		return // the old ones go next time
	}
	names := c.headers(infos)
	kept := map[string]bool{}
	for _, n := range names[:min(c.keep, len(names))] {
		kept[n] = true
	}
	var headers, pieces []string
	for _, i := range infos {
		rest, ok := c.dealerObject(i.Name)
		if !ok || kept[c.st.subjects.Dealer+"."+rest[:20]] {
			continue
		}
		if len(rest) == 20 {
			headers = append(headers, i.Name)
		} else {
			pieces = append(pieces, i.Name)
		}
	}
	if c.remove(ctx, headers) {
		c.remove(ctx, pieces)
	}
}

// remove deletes objects, in order, and purges what deleting leaves of
// each: the object store keeps a delete marker per object, and without the
// purge every checkpoint ever written would leave a few dozen for every
// later List to read. It stops at the first object it cannot delete and
// says whether it removed all.
func (c *Checkpoints) remove(ctx context.Context, objects []string) bool {
	stream, _ := c.st.js.Stream(ctx, "OBJ_"+c.bucket) // nil: markers stay
	for _, o := range objects {
		if err := c.obj.Delete(ctx, o); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return false
		}
		if stream != nil {
			// The object store keeps an object's metadata on this subject
			// (ADR-20); the delete marker is all that is left on it.
			_ = stream.Purge(ctx, jetstream.WithPurgeSubject(
				"$O."+c.bucket+".M."+base64.URLEncoding.EncodeToString([]byte(o))))
		}
	}
	return true
}

// names lists the dealer's checkpoints, newest first.
func (c *Checkpoints) names(ctx context.Context) ([]string, error) {
	infos, err := c.list(ctx, false)
	return c.headers(infos), err
}

// list lists the bucket, with its delete markers or without.
func (c *Checkpoints) list(ctx context.Context, deleted bool) ([]*jetstream.ObjectInfo, error) {
	var opts []jetstream.ListObjectsOpt
	if deleted {
		opts = append(opts, jetstream.ListObjectsShowDeleted())
	}
	infos, err := c.obj.List(ctx, opts...)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	return infos, nil
}

// headers names the dealer's checkpoints among infos, newest first.
func (c *Checkpoints) headers(infos []*jetstream.ObjectInfo) []string {
	var names []string
	for _, i := range infos {
		if rest, ok := c.dealerObject(i.Name); ok && len(rest) == 20 && !i.Deleted {
			names = append(names, i.Name)
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names
}

// dealerObject says whether name is a checkpoint's header or piece of
// this dealer, and gives what follows the dealer: a header's 20-digit
// sequence, a piece's sequence, a dot and its index.
func (c *Checkpoints) dealerObject(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, c.st.subjects.Dealer+".")
	return rest, ok && len(rest) >= 20
}

// Load offers use the newest of the dealer's checkpoints that can be
// trusted: its sequence and its parts as Save was given them. Each one
// passed over, for being untrustworthy or refused by use, is told to
// reject with the reason, and the next older one offered. It returns the
// name of the one used, "" if none was.
func (c *Checkpoints) Load(ctx context.Context, use func(seq uint64, parts [][]byte) error, reject func(name string, err error)) (string, error) {
	names, err := c.names(ctx)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		seq, parts, err := c.load(ctx, name)
		if err == nil {
			if err = use(seq, parts); err == nil {
				return name, nil
			}
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		reject(name, err)
	}
	return "", nil
}

// maxCheckpoint bounds what Load reads into memory.
const maxCheckpoint = 16 << 30

func (c *Checkpoints) load(ctx context.Context, name string) (uint64, [][]byte, error) {
	info, err := c.obj.GetInfo(ctx, name)
	if err != nil {
		return 0, nil, fmt.Errorf("reading it: %w", err)
	}
	h, err := c.trust(ctx, info)
	if err != nil {
		return 0, nil, err
	}
	// Only now the pieces, each checked by the object store against its
	// digest, which the signed header names.
	var total uint64
	offsets := make([]uint64, len(h.Pieces))
	for i, p := range h.Pieces {
		offsets[i] = total
		total += p.Size
	}
	body := make([]byte, total)
	err = inParallel(ctx, len(h.Pieces), func(i int) error {
		p := h.Pieces[i]
		if err := c.readPiece(ctx, pieceName(name, i), p, body[offsets[i]:offsets[i]+p.Size]); err != nil {
			return fmt.Errorf("piece %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	var parts [][]byte
	for _, n := range h.Parts {
		parts = append(parts, body[:n:n])
		body = body[n:]
	}
	return h.Seq, parts, nil
}

// readPiece reads a piece into buf, which is as long as the header says
// the piece is.
func (c *Checkpoints) readPiece(ctx context.Context, name string, p checkpointPiece, buf []byte) error {
	// Get follows a link, to another object or to itself, for ever: a
	// piece is never one.
	if info, err := c.obj.GetInfo(ctx, name); err != nil {
		return fmt.Errorf("reading it: %w", err)
	} else if info.Opts != nil && info.Opts.Link != nil {
		return errors.New("it is a link, not a piece")
	}
	res, err := c.obj.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("reading it: %w", err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return fmt.Errorf("reading it: %w", err)
	}
	switch {
	case info.Size != p.Size:
		return fmt.Errorf("it is %d bytes, the header says %d", info.Size, p.Size)
	case info.Digest != p.Digest:
		return errors.New("it is not the one the header names (digest)")
	}
	if _, err := io.ReadFull(res, buf); err != nil {
		return fmt.Errorf("reading it: %w", err)
	}
	// The object store checks the digest on reaching the end.
	if n, err := res.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("longer than it says")
		}
		return fmt.Errorf("its body: %w", err)
	}
	return nil
}

// trust checks what a checkpoint in the bucket claims, before its pieces
// are read.
func (c *Checkpoints) trust(ctx context.Context, info *jetstream.ObjectInfo) (checkpointHeader, error) {
	var h checkpointHeader
	meta, ok := info.Metadata[checkpointMeta]
	if !ok {
		return h, errors.New("it has no checkpoint header")
	}
	if err := json.Unmarshal([]byte(meta), &h); err != nil {
		return h, fmt.Errorf("its header: %w", err)
	}
	if info.Size != 0 {
		return h, fmt.Errorf("its header object holds %d bytes, not none", info.Size)
	}
	if err := c.trustHeader(h); err != nil {
		return h, err
	}
	return h, c.matchStream(ctx, h)
}

// trustHeader checks what a header claims that needs no stream to check:
// that it was made for this ledger and signed by its key.
func (c *Checkpoints) trustHeader(h checkpointHeader) error {
	if _, err := h.bodySize(); err != nil {
		return err
	}
	switch {
	case h.Format != checkpointFormat:
		return fmt.Errorf("format %d, not %d", h.Format, checkpointFormat)
	case h.Stream != c.st.stream || h.Dealer != c.st.subjects.Dealer:
		return fmt.Errorf("it is of stream %s, dealer %s", h.Stream, h.Dealer)
	case h.Keyring != ringFingerprint(c.st.ring):
		return errors.New("it was made under other trusted keys")
	}
	if err := c.st.ring.Verify(h.signedHash(), h.Sig, h.KeyID, h.Seq); err != nil {
		return fmt.Errorf("its signature: %w", err)
	}
	if !strings.HasPrefix(h.Subject, "ledger."+c.st.subjects.Dealer+".") {
		return fmt.Errorf("it names subject %s, not one of dealer %s", h.Subject, c.st.subjects.Dealer)
	}
	return nil
}

// bodySize is the size of the body the header describes, once its parts
// and its pieces agree on it.
func (h checkpointHeader) bodySize() (uint64, error) {
	var parts, pieces uint64
	for _, n := range h.Parts {
		parts += n
		if n > maxCheckpoint || parts > maxCheckpoint {
			return 0, errors.New("its parts are too large")
		}
	}
	for _, p := range h.Pieces {
		pieces += p.Size
		if p.Size > maxCheckpoint || pieces > maxCheckpoint {
			return 0, errors.New("its pieces are too large")
		}
	}
	if parts != pieces {
		return 0, fmt.Errorf("its parts make %d bytes, its pieces %d", parts, pieces)
	}
	return parts, nil
}

// matchStream checks that the stream holds, at the sequence the header
// names, the message it names.
func (c *Checkpoints) matchStream(ctx context.Context, h checkpointHeader) error {
	head, err := c.st.Head(ctx)
	if err != nil {
		return fmt.Errorf("reading the stream's head: %w", err)
	}
	if h.Seq == 0 || h.Seq > head {
		return fmt.Errorf("it covers seq %d, the stream ends at %d", h.Seq, head)
	}
	rec, found, err := c.st.leaderGet(ctx, directGetRequest{Seq: h.Seq})
	switch {
	case err != nil:
		return fmt.Errorf("reading seq %d: %w", h.Seq, err)
	case !found:
		return fmt.Errorf("seq %d is not in the stream", h.Seq)
	case rec.subject != h.Subject:
		return fmt.Errorf("seq %d is on %s, not %s", h.Seq, rec.subject, h.Subject)
	case rec.env.Hash != h.Hash:
		return fmt.Errorf("seq %d has hash %s, not %s", h.Seq, short(rec.env.Hash), short(h.Hash))
	}
	return nil
}

// inParallel calls do for each of 0 to n-1, checkpointFlight at a time,
// and returns the first error. After an error, or once ctx ends, no
// further call starts; those under way run to their end. They are not
// cut short on purpose: nats.go stops delivering a Get's chunks when its
// context ends, and its reader then waits out its read deadline; a Put
// cut short may leave its object behind.
func inParallel(ctx context.Context, n int, do func(i int) error) error {
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(n, checkpointFlight) {
		wg.Go(func() {
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if first == nil && done.Load() < int64(n) {
		first = ctx.Err()
	}
	return first
}
