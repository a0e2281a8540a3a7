package storage

import (
	"errors"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// MkdirAllSynced creates dir and its missing parents with perm, then syncs
// the parent of each directory it created, as pebble does for the
// directories it creates itself. A directory pebble finds already there
// gets no such sync, so without this a power cut soon after a first start
// can drop the directory entry, and with it a store or a raft log whose
// every write was synced. A nil vfsys is the operating system's.
func MkdirAllSynced(vfsys vfs.FS, dir string, perm os.FileMode) error {
	if vfsys == nil {
		vfsys = vfs.Default
	}
	var created []string
	for d := dir; ; {
		if _, err := vfsys.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		parent := vfsys.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := vfsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		if err := SyncDir(vfsys, vfsys.PathDir(d)); err != nil {
			return err
		}
	}
	return nil
}

// SyncDir syncs a directory, making the entries created in it durable.
func SyncDir(vfsys vfs.FS, dir string) error {
	f, err := vfsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
