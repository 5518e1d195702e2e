package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/minio/highwayhash"
)

// A stopped cluster node's store directory holds its own copy of each
// replicated stream, in the same file layout as a single server's, but a
// server that is not clustered refuses to load a stream whose config says
// more than one replica. To read one node's copy on its own, as an auditor
// checks that every node holds the same ledger, the stream's files are
// copied to a scratch directory with the config's replica count set to
// one. The node's own files are only read.

// globalAccount is the account of a server without accounts, where
// packledger's streams live.
const globalAccount = "$G"

// ReplicaCopy looks at a store directory's copy of stream. If it is a
// cluster node's copy of a replicated stream, it copies the stream into a
// new directory under scratch that a single server can load, and returns
// that directory; otherwise it returns "" and the directory can be used as
// it is.
func ReplicaCopy(storeDir, stream, scratch string) (string, error) {
	src := filepath.Join(storeDir, "jetstream", globalAccount, "streams", stream)
	meta, err := os.ReadFile(filepath.Join(src, "meta.inf"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(meta, &cfg); err != nil {
		// Encrypted, or not what this version writes: let the server say.
		return "", nil
	}
	var replicas int
	if err := json.Unmarshal(cfg["num_replicas"], &replicas); err != nil || replicas <= 1 {
		return "", nil
	}
	out, err := os.MkdirTemp(scratch, "packledger-replica-")
	if err != nil {
		return "", fmt.Errorf("replica copy: %w", err)
	}
	dst := filepath.Join(out, "jetstream", globalAccount, "streams", stream)
	if err := copyStreamFiles(src, dst); err != nil {
		os.RemoveAll(out)
		return "", fmt.Errorf("replica copy of %s: %w", src, err)
	}
	cfg["num_replicas"] = json.RawMessage("1")
	meta, err = json.Marshal(cfg)
	if err == nil {
		err = writeStreamMeta(dst, stream, meta)
	}
	if err != nil {
		os.RemoveAll(out)
		return "", fmt.Errorf("replica copy: %w", err)
	}
	return out, nil
}

// copyStreamFiles copies a stream's message blocks and index. The
// consumers (obs/) stay behind: they are the cluster's, and a reader
// makes its own.
func copyStreamFiles(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && rel == "obs":
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return fs.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("replica copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("replica copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("replica copy %s: %w", src, err)
	}
	return out.Close()
}

// writeStreamMeta writes a stream's config and its checksum as nats-server
// does: a HighwayHash-64 of the file, keyed with the SHA-256 of the
// stream's name, which the server checks before it loads the stream.
func writeStreamMeta(dir, stream string, meta []byte) error {
	key := sha256.Sum256([]byte(stream))
	h, err := highwayhash.New64(key[:])
	if err != nil {
		return err
	}
	h.Write(meta)
	if err := os.WriteFile(filepath.Join(dir, "meta.inf"), meta, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "meta.sum"), []byte(hex.EncodeToString(h.Sum(nil))), 0o600)
}
