package storage_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/teamflow/teamflow/storage"
)

// A store in a directory made by MkdirAllSynced keeps its acknowledged
// writes through a power cut right after its first start; in one made by a
// plain MkdirAll the directory entry itself can be lost, and every synced
// write with it (pebble syncs the parents only of directories it creates).
func TestMkdirAllSyncedSurvivesPowerCut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mkdir func(vfs.FS, string) error
		kept  bool
	}{
		{"MkdirAllSynced", func(fs vfs.FS, dir string) error { return storage.MkdirAllSynced(fs, dir, 0o700) }, true},
		{"plain MkdirAll (control)", func(fs vfs.FS, dir string) error { return fs.MkdirAll(dir, 0o700) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			const dir = "/data/state"
			if err := tc.mkdir(fs, dir); err != nil {
				t.Fatal(err)
			}
			s, err := storage.Open(dir, storage.Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			l := storage.NewLocalLog(s, storage.LocalLogOptions{})
			cmd := &storage.Command{Tenant: "acme", Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("task", "1"), Value: []byte("synced"), Version: 1}}}
			if res, err := l.Propose(context.Background(), cmd); err != nil || res.Err != nil {
				t.Fatalf("propose: %v %v", err, res.Err)
			}
			cut := fs.CrashClone(vfs.CrashCloneCfg{}) // the synced bytes only
			l.Close()
			s.Close()

			kept := false
			if s2, err := storage.Open(dir, storage.Options{FS: cut}); err == nil {
				_, gerr := s2.Tenant("acme").Get(storage.K("task", "1"))
				kept = gerr == nil
				s2.Close()
			}
			if kept != tc.kept {
				t.Fatalf("acknowledged write kept after the power cut: %v, want %v", kept, tc.kept)
			}
		})
	}
}
