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
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Checkpoints keeps the read models' checkpoints in a JetStream object
// store beside the ledger's stream, one object a checkpoint, named by
// dealer and sequence, the newest few kept. A checkpoint is derived data:
// it may be replaced or lost, and the ledger rebuilt from the stream.
//
// Others may write to the bucket, so one is trusted only if it matches
// the stream it claims to cover: the format, stream, dealer and keyring
// it was made for, a sequence no later than the stream's head, the
// message stored there with the subject and hash the checkpoint names, a
// body whose SHA-256 is the one named, and all of it signed by the
// ledger's key.
type Checkpoints struct {
	st     *Store
	obj    jetstream.ObjectStore
	signer *Signer
	keep   int
}

// checkpointFormat versions the header; another is not trusted.
const checkpointFormat = 1

// checkpointMeta is the metadata key of a checkpoint's header.
const checkpointMeta = "packledger-checkpoint"

// checkpointChunk is the object store's chunk size: the largest that fits
// a NATS message, so that a checkpoint of a million packages is a few
// hundred fsynced writes, not thousands.
const checkpointChunk = 768 << 10

// checkpointHeader is what a checkpoint claims, and what its signature
// covers (all of it but Sig).
type checkpointHeader struct {
	Format  int       `json:"format"`
	Stream  string    `json:"stream"`
	Dealer  string    `json:"dealer"`
	Keyring string    `json:"keyring"`
	Seq     uint64    `json:"seq"`
	Subject string    `json:"subject"`
	Hash    string    `json:"hash"`
	Parts   []uint64  `json:"parts"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	KeyID   string    `json:"key_id"`
	Sig     string    `json:"sig,omitempty"`
}

// signedHash is the hex SHA-256 of the header without its signature.
func (h checkpointHeader) signedHash() string {
	h.Sig = ""
	b, _ := json.Marshal(h)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var bucketPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Checkpoints opens the bucket of the store's checkpoints, creating it on
// first use with the stream's replicas. signer signs what Save writes.
func (s *Store) Checkpoints(ctx context.Context, signer *Signer) (*Checkpoints, error) {
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
	return &Checkpoints{st: s, obj: obj, signer: signer, keep: 3}, nil
}

// ringFingerprint names the set of trusted keys: chains judged under
// another set would have judged differently.
func ringFingerprint(r *Keyring) string {
	sum := sha256.Sum256([]byte(strings.Join(r.Keys(), "\n")))
	return hex.EncodeToString(sum[:])
}

func (c *Checkpoints) objectName(seq uint64) string {
	return fmt.Sprintf("%s.%020d", c.st.subjects.Dealer, seq)
}

// Save writes a checkpoint covering the stream up to seq, where the
// message on subject has the given hash; parts are the checkpoint's
// contents, read back by Load as they were. It then drops all but the
// newest few of the dealer's checkpoints.
func (c *Checkpoints) Save(ctx context.Context, seq uint64, subject, hash string, parts ...[]byte) error {
	if seq == 0 || hash == "" || c.signer == nil {
		return errors.New("checkpoint: nothing to cover, or no key to sign with")
	}
	sum := sha256.New()
	h := checkpointHeader{
		Format: checkpointFormat, Stream: c.st.stream, Dealer: c.st.subjects.Dealer, Keyring: ringFingerprint(c.st.ring),
		Seq: seq, Subject: subject, Hash: hash, Created: time.Now().UTC(),
	}
	readers := make([]io.Reader, len(parts))
	for i, p := range parts {
		sum.Write(p)
		h.Parts = append(h.Parts, uint64(len(p)))
		readers[i] = bytes.NewReader(p)
	}
	h.Digest = "SHA-256=" + base64.URLEncoding.EncodeToString(sum.Sum(nil))
	h.KeyID = c.signer.id // signed too
	h.Sig, _ = c.signer.Sign(h.signedHash())
	meta, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("checkpoint header: %w", err)
	}
	name := c.objectName(seq)
	_, err = c.obj.Put(ctx, jetstream.ObjectMeta{
		Name: name, Description: fmt.Sprintf("read models of dealer %s up to seq %d", h.Dealer, seq),
		Metadata: map[string]string{checkpointMeta: string(meta)},
		Opts:     &jetstream.ObjectMetaOptions{ChunkSize: checkpointChunk},
	}, io.MultiReader(readers...))
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	names, err := c.names(ctx)
	if err != nil {
		return nil // written; the old ones go next time
	}
	for _, old := range names[min(c.keep, len(names)):] {
		_ = c.obj.Delete(ctx, old)
	}
	return nil
}

// names lists the dealer's checkpoints, newest first.
func (c *Checkpoints) names(ctx context.Context) ([]string, error) {
	infos, err := c.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	prefix := c.st.subjects.Dealer + "."
	var names []string
	for _, i := range infos {
		if rest, ok := strings.CutPrefix(i.Name, prefix); ok && len(rest) == 20 && !i.Deleted {
			names = append(names, i.Name)
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
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
	res, err := c.obj.Get(ctx, name)
	if err != nil {
		return 0, nil, fmt.Errorf("reading it: %w", err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return 0, nil, fmt.Errorf("reading it: %w", err)
	}
	h, err := c.trust(ctx, info)
	if err != nil {
		return 0, nil, err
	}
	// Only now the body, which the object store checks against the
	// digest the signed header names.
	body := make([]byte, info.Size)
	if _, err := io.ReadFull(res, body); err != nil {
		return 0, nil, fmt.Errorf("reading it: %w", err)
	}
	if n, err := res.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("longer than it says")
		}
		return 0, nil, fmt.Errorf("its body: %w", err)
	}
	var parts [][]byte
	for _, n := range h.Parts {
		parts = append(parts, body[:n:n])
		body = body[n:]
	}
	return h.Seq, parts, nil
}

// trust checks what a checkpoint claims, before its body is read.
func (c *Checkpoints) trust(ctx context.Context, info *jetstream.ObjectInfo) (checkpointHeader, error) {
	var h checkpointHeader
	meta, ok := info.Metadata[checkpointMeta]
	if !ok {
		return h, errors.New("it has no checkpoint header")
	}
	if err := json.Unmarshal([]byte(meta), &h); err != nil {
		return h, fmt.Errorf("its header: %w", err)
	}
	var total uint64
	for _, n := range h.Parts {
		total += n
		if n > maxCheckpoint || total > maxCheckpoint {
			return h, errors.New("its parts are too large")
		}
	}
	switch {
	case h.Format != checkpointFormat:
		return h, fmt.Errorf("format %d, not %d", h.Format, checkpointFormat)
	case h.Stream != c.st.stream || h.Dealer != c.st.subjects.Dealer:
		return h, fmt.Errorf("it is of stream %s, dealer %s", h.Stream, h.Dealer)
	case h.Keyring != ringFingerprint(c.st.ring):
		return h, errors.New("it was made under other trusted keys")
	case total != info.Size:
		return h, fmt.Errorf("its parts make %d bytes, the object %d", total, info.Size)
	case h.Digest != info.Digest:
		return h, errors.New("its body is not the one its header names (digest)")
	}
	if err := c.st.ring.Verify(h.signedHash(), h.Sig, h.KeyID, h.Seq); err != nil {
		return h, fmt.Errorf("its signature: %w", err)
	}
	if !strings.HasPrefix(h.Subject, "ledger."+c.st.subjects.Dealer+".") {
		return h, fmt.Errorf("it names subject %s, not one of dealer %s", h.Subject, c.st.subjects.Dealer)
	}
	head, err := c.st.Head(ctx)
	if err != nil {
		return h, fmt.Errorf("reading the stream's head: %w", err)
	}
	if h.Seq == 0 || h.Seq > head {
		return h, fmt.Errorf("it covers seq %d, the stream ends at %d", h.Seq, head)
	}
	rec, found, err := c.st.leaderGet(ctx, directGetRequest{Seq: h.Seq})
	switch {
	case err != nil:
		return h, fmt.Errorf("reading seq %d: %w", h.Seq, err)
	case !found:
		return h, fmt.Errorf("seq %d is not in the stream", h.Seq)
	case rec.subject != h.Subject:
		return h, fmt.Errorf("seq %d is on %s, not %s", h.Seq, rec.subject, h.Subject)
	case rec.env.Hash != h.Hash:
		return h, fmt.Errorf("seq %d has hash %s, not %s", h.Seq, short(rec.env.Hash), short(h.Hash))
	}
	return h, nil
}
