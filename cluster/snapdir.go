package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/teamflow/teamflow/storage"
)

// snapDir holds snapshot streams received from the leader, one file per
// index (Dir/snap/<index in hex>.snap), from the moment they are checked
// until the state store has installed them. A stream is written to a
// temporary file, verified (format, checksum, index), synced and only then
// renamed into place, so a file under its final name is always whole.
// The files live on the raft log's filesystem (Config.FS), so that a power
// cut in the deterministic cluster test takes both at the same instant.
type snapDir struct {
	fs  vfs.FS
	dir string
}

func (d snapDir) path(index uint64) string {
	return filepath.Join(d.dir, fmt.Sprintf("%016x.snap", index))
}

// receive stores the stream read from r, refusing it unless it is a whole,
// uncorrupted snapshot taken at index.
func (d snapDir) receive(r io.Reader, index uint64) error {
	tmp := filepath.Join(d.dir, fmt.Sprintf("incoming-%016x-%s.tmp", index, randomID()))
	f, err := d.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("cluster: snapshot file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	got, err := storage.VerifySnapshot(io.TeeReader(r, bw))
	if err == nil && got != index {
		err = fmt.Errorf("%w: stream taken at %d, message says %d", storage.ErrSnapshotCorrupt, got, index)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.fs.Rename(tmp, d.path(index))
	}
	if err != nil {
		d.fs.Remove(tmp)
		return err
	}
	return d.syncDir()
}

func (d snapDir) open(index uint64) (vfs.File, error) { return d.fs.Open(d.path(index)) }

// prune removes the snapshots at or below upTo, which the store has
// installed (or moved past), and with tmp the temporary files of transfers
// cut short (only at start, when no transfer is in progress).
func (d snapDir) prune(upTo uint64, tmp bool) error {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, ".tmp"):
			if !tmp {
				continue
			}
		case strings.HasSuffix(name, ".snap"):
			idx, err := strconv.ParseUint(strings.TrimSuffix(name, ".snap"), 16, 64)
			if err == nil && idx > upTo {
				continue
			}
		default:
			continue
		}
		if err := d.fs.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (d snapDir) syncDir() error { return storage.SyncDir(d.fs, d.dir) }
