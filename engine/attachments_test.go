package engine_test

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// leftovers counts chunk records and unfinished uploads in the workspace.
func leftovers(t *testing.T, w *world) (chunks, uploads int) {
	t.Helper()
	v := w.env.Store.Tenant(w.ws.ID)
	// An unfinished upload is three records: attup, its bytes counter attub
	// and its last-chunk time attut.
	for prefix, n := range map[string]*int{"attc": &chunks, "attup": &uploads, "attub": &uploads, "attut": &uploads} {
		if err := v.Scan(storage.K(prefix), storage.ScanOptions{}, func(storage.Key, storage.Record) error { *n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return chunks, uploads
}

func used(t *testing.T, w *world) int64 {
	t.Helper()
	u, _, err := w.svc.StorageUsed(ctx, w.owner)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Purging a deleted task removes its attachments' (and its comments')
// chunks and gives their bytes back to the quota.
func TestAttachmentsPurgedWithTheirTask(t *testing.T) {
	w := newWorld(t)
	proj, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Files"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "with files"})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.svc.CreateComment(ctx, w.owner, task.ID, "see the recording", "")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 3*engine.AttachmentChunkSize+17)
	for _, in := range []engine.UploadInput{
		{TaskID: task.ID, Name: "a.txt", Length: -1, Body: bytes.NewReader(big)},
		{CommentID: c.ID, Name: "b.txt", Length: 5, Body: bytes.NewReader([]byte("hello"))},
		{TaskID: keep.ID, Name: "c.txt", Length: 4, Body: bytes.NewReader([]byte("kept"))},
	} {
		if _, err := w.svc.UploadAttachment(ctx, w.owner, in); err != nil {
			t.Fatal(err)
		}
	}
	if got := used(t, w); got != int64(len(big))+5+4 {
		t.Fatalf("used %d", got)
	}
	if err := w.svc.DeleteTask(ctx, w.owner, task.ID, 0); err != nil {
		t.Fatal(err)
	}
	// Trashed, not purged: the bytes still count.
	if got := used(t, w); got != int64(len(big))+5+4 {
		t.Fatalf("used %d after delete", got)
	}
	w.env.Clock.Advance(31 * 24 * time.Hour)
	if _, err := w.svc.PurgeExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if got := used(t, w); got != 4 {
		t.Fatalf("used %d after purge, want 4", got)
	}
	if chunks, uploads := leftovers(t, w); chunks != 1 || uploads != 0 {
		t.Fatalf("%d chunks, %d uploads left; want only the kept file's chunk", chunks, uploads)
	}
	page, err := w.svc.ListTaskAttachments(ctx, w.owner, keep.ID, engine.PageRequest{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("kept task's files: %v %v", page, err)
	}
}

// stallReader hands out n bytes, then stalls until release is closed, and
// fails: a client that went away mid-upload.
type stallReader struct {
	left    int
	release chan struct{}
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		<-r.release
		return 0, io.ErrClosedPipe
	}
	n := min(len(p), r.left)
	r.left -= n
	for i := range p[:n] {
		p[i] = 'z'
	}
	return n, nil
}

// An upload that stalls part way is cleaned by the attachments.cleanup job
// once it has been quiet for UploadAbandonAfter, and its bytes come back.
func TestAbandonedUploadIsCleaned(t *testing.T) {
	w := newWorld(t)
	proj, _ := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Files"})
	task, _ := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "t"})
	body := &stallReader{left: 2 * engine.AttachmentChunkSize, release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := w.svc.UploadAttachment(ctx, w.owner, engine.UploadInput{TaskID: task.ID, Length: -1, Body: body})
		done <- err
	}()
	eventually(t, func() bool { chunks, uploads := leftovers(t, w); return chunks == 2 && uploads == 3 })
	if got := used(t, w); got != 2*engine.AttachmentChunkSize {
		t.Fatalf("reserved %d", got)
	}
	// Too early: a slow upload is left alone.
	if n, err := w.svc.CleanAbandonedUploads(ctx); err != nil || n != 0 {
		t.Fatalf("early clean: %d %v", n, err)
	}
	w.env.Clock.Advance(engine.UploadAbandonAfter + time.Minute)
	if n, err := w.svc.CleanAbandonedUploads(ctx); err != nil || n != 1 {
		t.Fatalf("clean: %d %v", n, err)
	}
	if chunks, uploads := leftovers(t, w); chunks != 0 || uploads != 0 {
		t.Fatalf("after the clean: %d chunks, %d uploads", chunks, uploads)
	}
	if got := used(t, w); got != 0 {
		t.Fatalf("used %d after the clean", got)
	}
	// The client's connection finally fails: nothing to undo twice.
	close(body.release)
	if err := <-done; code(err) != "upload_interrupted" {
		t.Fatalf("stalled upload ended with %v", err)
	}
	if got := used(t, w); got != 0 {
		t.Fatalf("used %d at the end", got)
	}
	if n, err := w.svc.CleanAbandonedUploads(ctx); err != nil || n != 0 {
		t.Fatalf("second clean: %d %v", n, err)
	}
}

// Concurrent uploads can never pass the quota together: the bytes are a
// bounded counter in the log. Six uploads of 600 KiB into 2 MiB: three fit.
func TestConcurrentUploadsStayWithinQuota(t *testing.T) {
	const quota, size = 2 << 20, 600 << 10
	for _, length := range []int64{-1, size} {
		t.Run(fmt.Sprintf("length %d", length), func(t *testing.T) {
			w := newWorld(t)
			env := w.env
			svc := engine.New(engine.Deps{Router: engine.SharedRouter{Route: engine.Route{Log: env.Log, Store: env.Store}}, Clock: env.Clock},
				engine.Config{Mode: engine.ModeCloud, StorageBytes: quota})
			proj, _ := svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Files"})
			task, _ := svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "t"})
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok, refused := 0, 0
			for range 6 {
				wg.Go(func() {
					_, err := svc.UploadAttachment(ctx, w.owner, engine.UploadInput{TaskID: task.ID, Length: length,
						Body: bytes.NewReader(bytes.Repeat([]byte("q"), size))})
					mu.Lock()
					defer mu.Unlock()
					switch code(err) {
					case "":
						ok++
					case "storage_quota_exceeded":
						refused++
					default:
						t.Errorf("upload: %v", err)
					}
				})
			}
			wg.Wait()
			u, _, _ := svc.StorageUsed(ctx, w.owner)
			if u > quota || u != int64(ok)*size || ok+refused != 6 || refused == 0 {
				t.Fatalf("ok %d refused %d used %d (quota %d)", ok, refused, u, quota)
			}
			// A streamed body reserves chunk by chunk, so concurrent ones can
			// all be refused together, each holding part of the room when its
			// next chunk does not fit. A known length is reserved whole with
			// the first chunk: exactly the three that fit are kept.
			if length > 0 && ok != 3 {
				t.Fatalf("%d of six uploads of known length kept, want 3", ok)
			}
			if _, uploads := leftovers(t, w); uploads != 0 {
				t.Fatalf("%d unfinished uploads left", uploads)
			}
		})
	}
}

// An upload of known length holds all of it against the quota from its
// first chunk until it ends, and gives it all back when it is abandoned.
func TestKnownLengthUploadReservesWhole(t *testing.T) {
	w := newWorld(t)
	proj, _ := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Files"})
	task, _ := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "t"})
	const length = 5 * engine.AttachmentChunkSize
	body := &stallReader{left: 2 * engine.AttachmentChunkSize, release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := w.svc.UploadAttachment(ctx, w.owner, engine.UploadInput{TaskID: task.ID, Length: length, Body: body})
		done <- err
	}()
	eventually(t, func() bool { chunks, _ := leftovers(t, w); return chunks == 2 })
	if got := used(t, w); got != length {
		t.Fatalf("reserved %d after two chunks, want the whole %d", got, length)
	}
	close(body.release)
	if err := <-done; code(err) != "upload_interrupted" {
		t.Fatalf("stalled upload ended with %v", err)
	}
	if chunks, uploads := leftovers(t, w); chunks != 0 || uploads != 0 || used(t, w) != 0 {
		t.Fatalf("left %d chunks, %d upload records, %d bytes", chunks, uploads, used(t, w))
	}
	// A body longer than declared fails and leaves nothing behind.
	for _, size := range []int{100, 3 * engine.AttachmentChunkSize} {
		_, err := w.svc.UploadAttachment(ctx, w.owner, engine.UploadInput{TaskID: task.ID, Length: 10,
			Body: bytes.NewReader(make([]byte, size))})
		if code(err) != "upload_interrupted" {
			t.Fatalf("%d bytes declared as 10: %v", size, err)
		}
	}
	if chunks, uploads := leftovers(t, w); chunks != 0 || uploads != 0 || used(t, w) != 0 {
		t.Fatalf("left %d chunks, %d upload records, %d bytes", chunks, uploads, used(t, w))
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// A body cut short (the client's connection dropped) is an error, never a
// shorter file; what was written is removed.
func TestTruncatedUploadIsNotStored(t *testing.T) {
	w := newWorld(t)
	proj, _ := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Files"})
	task, _ := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "t"})
	for _, size := range []int{100, 300 << 10} {
		body := io.MultiReader(bytes.NewReader(make([]byte, size)), failingReader{io.ErrUnexpectedEOF})
		_, err := w.svc.UploadAttachment(ctx, w.owner, engine.UploadInput{TaskID: task.ID, Length: -1, Body: body})
		if code(err) != "upload_interrupted" {
			t.Fatalf("%d bytes then a dropped connection: %v", size, err)
		}
	}
	if chunks, uploads := leftovers(t, w); chunks != 0 || uploads != 0 || used(t, w) != 0 {
		t.Fatalf("left %d chunks, %d upload records, %d bytes", chunks, uploads, used(t, w))
	}
}
