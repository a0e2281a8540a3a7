package engine

// Attachments: files on tasks and comments, and the video and audio
// messages the web UI records. The content lives in the replicated store in
// chunks of AttachmentChunkSize bytes, each written by its own command; a
// final command makes the attachment visible. Bytes count against the
// plan's storage quota as they arrive (a bounded counter, so concurrent
// uploads can never pass it). docs/ATTACHMENTS.md describes the layout.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"mime"
	"net/http"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
	"golang.org/x/image/draw"
)

// Attachment limits.
const (
	// AttachmentChunkSize is the size of each stored chunk (the last one of
	// a file may be shorter).
	AttachmentChunkSize = 256 << 10
	// DefaultMaxAttachmentBytes caps one file unless Config.MaxAttachmentBytes says otherwise.
	DefaultMaxAttachmentBytes = 256 << 20
	// UploadAbandonAfter is how long an upload may go without a new chunk
	// before CleanAbandonedUploads removes it and gives its bytes back.
	UploadAbandonAfter = time.Hour

	maxAttachmentName = 255
	uploadPipeline    = 2                  // chunk commands in flight per upload
	maxDurationMS     = 4 * 60 * 60 * 1000 // four hours
	thumbnailMax      = 320                // a thumbnail fits in thumbnailMax × thumbnailMax
	maxImagePixels    = 24 << 20           // larger images get no thumbnail (decompression bombs)
	maxImageSide      = 16384
)

// Attachment kinds.
const (
	AttachmentFile         = "file"
	AttachmentVideoMessage = "video_message"
	AttachmentAudioMessage = "audio_message"
)

// Attachment keys (tenant space).
var kStorageCnt = storage.K("cnt", "storage")

func kAttachment(id string) storage.Key { return storage.K("att", id) }
func kAttChunks(id string) storage.Key  { return storage.K("attc", id) }
func kAttChunk(id string, n int) storage.Key {
	return kAttChunks(id).AddUint(uint64(n))
}
func kAttThumb(id string) storage.Key          { return storage.K("atth", id) }
func kUpload(id string) storage.Key            { return storage.K("attup", id) }
func kUploadBytes(id string) storage.Key       { return storage.K("attub", id) }
func kUploadTouch(id string) storage.Key       { return storage.K("attut", id) }
func kTaskAttachments(t string) storage.Key    { return storage.K("ix", "tatt", t) }
func kCommentAttachments(c string) storage.Key { return storage.K("ix", "catt", c) }

type attachmentRecord struct {
	ID          string `json:"id"`
	TaskID      string `json:"task_id"`
	ProjectID   string `json:"project_id"`
	CommentID   string `json:"comment_id,omitempty"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Kind        string `json:"kind"`
	Size        int64  `json:"size"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	ChunkSize   int64  `json:"chunk_size"`
	Chunks      int    `json:"chunks"`
	SHA256      string `json:"sha256"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	ThumbType   string `json:"thumb_type,omitempty"`
	ThumbSize   int64  `json:"thumb_size,omitempty"`
	UploadedBy  string `json:"uploaded_by"`
	CreatedAt   int64  `json:"created_at"`
}

// uploadRecord is an upload in progress: its chunks are stored but the
// attachment is not visible yet. Its bytes reserved against the quota
// (all at once when the length is known, else as they came; see
// reservation) are the counter kUploadBytes; kUploadTouch says when the last
// chunk came. Chunk commands only require the record to exist, so several
// can be in flight at once.
type uploadRecord struct {
	ID         string `json:"id"`
	TaskID     string `json:"task_id"`
	CommentID  string `json:"comment_id,omitempty"`
	UploadedBy string `json:"uploaded_by"`
	StartedAt  int64  `json:"started_at"`
}

type uploadTouch struct {
	LastAt int64 `json:"last_at"`
}

// Attachment is the API view of an attachment.
type Attachment struct {
	ID          string    `json:"id"`
	TaskID      string    `json:"task_id"`
	CommentID   *string   `json:"comment_id" doc:"The comment it belongs to; null for a file on the task itself"`
	Name        string    `json:"name" doc:"The file name (sanitized)"`
	ContentType string    `json:"content_type" doc:"Sniffed from the content, never taken from the client (except to tell an audio from a video recording in the same container)"`
	Size        int64     `json:"size" doc:"Bytes"`
	Kind        string    `json:"kind" enum:"file,video_message,audio_message"`
	DurationMS  *int64    `json:"duration_ms" doc:"Length of a recording, as the recording client measured it"`
	Inline      bool      `json:"inline" doc:"Images, audio, video and PDF are served inline; anything else downloads"`
	SHA256      string    `json:"sha256" doc:"Hex SHA-256 of the content (also its ETag)"`
	Width       int       `json:"width,omitempty" doc:"Pixels, for images"`
	Height      int       `json:"height,omitempty" doc:"Pixels, for images"`
	Thumbnail   bool      `json:"has_thumbnail" doc:"GET /api/v1/attachments/{id}/thumbnail serves a small preview"`
	UploadedBy  string    `json:"uploaded_by"`
	CreatedAt   time.Time `json:"created_at"`
}

func (a *attachmentRecord) view() *Attachment {
	out := &Attachment{
		ID: a.ID, TaskID: a.TaskID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, Kind: a.Kind,
		Inline: InlineType(a.ContentType), SHA256: a.SHA256, Width: a.Width, Height: a.Height,
		Thumbnail: a.ThumbType != "", UploadedBy: a.UploadedBy, CreatedAt: time.UnixMilli(a.CreatedAt).UTC(),
	}
	if a.CommentID != "" {
		c := a.CommentID
		out.CommentID = &c
	}
	if a.Kind != AttachmentFile || a.DurationMS > 0 {
		d := a.DurationMS
		out.DurationMS = &d
	}
	return out
}

// InlineType reports whether content of type ct may be shown in the
// browser: images (not SVG, which can carry script), audio, video and PDF.
func InlineType(ct string) bool {
	mt := mediaBase(ct)
	switch {
	case mt == "image/svg+xml":
		return false
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return true
	}
	return mt == "application/pdf"
}

func mediaBase(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// containers that hold either sound or pictures: the sniffer names one, the
// client's declared type (or the kind) may name the other, never another
// container.
var mediaContainer = map[string]string{
	"video/webm": "webm", "audio/webm": "webm",
	"application/ogg": "ogg", "audio/ogg": "ogg", "video/ogg": "ogg",
	"video/mp4": "mp4", "audio/mp4": "mp4",
}

// servedType decides an upload's content type from its first bytes.
func servedType(kind, declared, sniffed string) (string, error) {
	ct := sniffed
	s, d := mediaBase(sniffed), mediaBase(declared)
	if f, ok := mediaContainer[s]; ok {
		switch {
		case mediaContainer[d] == f && d != "application/ogg":
			ct = d
		case kind == AttachmentAudioMessage:
			ct = "audio/" + f
		case kind == AttachmentVideoMessage:
			ct = "video/" + f
		case f == "ogg":
			ct = "audio/ogg"
		}
	}
	switch kind {
	case AttachmentVideoMessage:
		if !strings.HasPrefix(ct, "video/") {
			return "", invalid("file", "not_a_recording", "a video message must be a video (this content is %s)", mediaBase(ct))
		}
	case AttachmentAudioMessage:
		if !strings.HasPrefix(ct, "audio/") {
			return "", invalid("file", "not_a_recording", "an audio message must be audio (this content is %s)", mediaBase(ct))
		}
	}
	return ct, nil
}

// cleanName keeps the last path element of a client's file name, without
// control characters, at most maxAttachmentName bytes.
func cleanName(name, ct string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError || r == '"' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > maxAttachmentName {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == "/" || name == ".." {
		name = "attachment"
		if exts, _ := mime.ExtensionsByType(mediaBase(ct)); len(exts) > 0 {
			name += exts[0]
		}
	}
	return name
}

// UploadInput is one file to store.
type UploadInput struct {
	TaskID       string // the task (ID or key), or
	CommentID    string // the comment it belongs to
	Name         string // the client's file name
	DeclaredType string // the client's Content-Type: a hint only
	Kind         string // file (default), video_message or audio_message
	DurationMS   int64  // length of a recording (required for messages)
	Length       int64  // declared length, or -1 when unknown
	Body         io.Reader
	// Progress, when set, is called after each stored chunk (the HTTP layer
	// extends its read deadline there).
	Progress func()
}

func (s *Service) maxAttachmentBytes() int64 {
	if s.cfg.MaxAttachmentBytes > 0 {
		return s.cfg.MaxAttachmentBytes
	}
	return DefaultMaxAttachmentBytes
}

// storageQuota is the workspace's storage allowance in bytes.
func (s *Service) storageQuota(tenant string) (licensing.Plan, int64, error) {
	plan, err := s.plan(tenant)
	if err != nil {
		return plan, 0, err
	}
	q := plan.StorageBytes
	if q == licensing.Unlimited {
		q = math.MaxInt64
	}
	if s.cfg.StorageBytes > 0 {
		q = s.cfg.StorageBytes
	}
	return plan, q, nil
}

func errFileTooLarge(max int64) error {
	return &Error{Code: "file_too_large", Field: "file", Err: ErrInvalid,
		Message: fmt.Sprintf("a file may have at most %d bytes", max), Details: map[string]any{"max_bytes": max}}
}

func errQuota(plan string, quota, used int64) error {
	return &Error{Code: "storage_quota_exceeded", Err: ErrLimit,
		Message: fmt.Sprintf("the workspace's storage is full (%d of %d bytes used on the %s plan): delete files or upgrade the plan", used, quota, plan),
		Details: map[string]any{"limit": "storage", "plan": plan, "max": quota, "used": used}}
}

var errUploadGone = &Error{Code: "upload_expired", Message: "the upload was abandoned and removed; start again", Err: ErrConflict}

func errInterrupted(err error) error {
	return &Error{Code: "upload_interrupted", Message: "the upload did not complete: " + err.Error(), Err: ErrInvalid}
}

// uploadTarget resolves where an upload goes and checks the caller may write there.
func (s *Service) uploadTarget(v storage.View, p Principal, taskID, commentID string) (*taskRecord, *commentRecord, error) {
	if commentID != "" {
		c, _, role, err := s.visibleComment(v, p, commentID)
		if err != nil {
			return nil, nil, err
		}
		if role.rank() < ProjectContributor.rank() {
			return nil, nil, forbidden("your role in this project (%s) does not allow attaching files", role)
		}
		if c.AuthorID != p.actor() && role != ProjectLead {
			return nil, nil, forbidden("only its author can attach files to a comment")
		}
		t, _, _, _, err := s.visibleTask(v, p, c.TaskID)
		if err != nil {
			return nil, nil, notFound("comment")
		}
		return t, c, nil
	}
	t, _, _, role, err := s.visibleTask(v, p, taskID)
	if err != nil {
		return nil, nil, err
	}
	if role.rank() < ProjectContributor.rank() {
		return nil, nil, forbidden("your role in this project (%s) does not allow attaching files", role)
	}
	return t, nil, nil
}

// UploadAttachment streams a file into the store: chunk by chunk, each its
// own command, never the whole file in memory. A refused or interrupted
// upload leaves nothing behind: its chunks are removed and its bytes given
// back before the error returns.
func (s *Service) UploadAttachment(ctx context.Context, p Principal, in UploadInput) (*Attachment, error) {
	if in.Kind == "" {
		in.Kind = AttachmentFile
	}
	switch in.Kind {
	case AttachmentFile, AttachmentVideoMessage, AttachmentAudioMessage:
	default:
		return nil, invalid("kind", "invalid_kind", "kind is file, video_message or audio_message")
	}
	if in.DurationMS < 0 || in.DurationMS > maxDurationMS {
		return nil, invalid("duration_ms", "invalid_duration", "duration_ms is between 0 and %d", maxDurationMS)
	}
	if in.Kind != AttachmentFile && in.DurationMS == 0 {
		return nil, invalid("duration_ms", "required", "a recorded message needs its duration_ms")
	}
	max := s.maxAttachmentBytes()
	if in.Length > max {
		return nil, errFileTooLarge(max)
	}
	log, v := s.tenant(p.Tenant)
	t, c, err := s.uploadTarget(v, p, in.TaskID, in.CommentID)
	if err != nil {
		return nil, err
	}
	plan, quota, err := s.storageQuota(p.Tenant)
	if err != nil {
		return nil, err
	}
	used, err := counterValue(v, kStorageCnt)
	if err != nil {
		return nil, err
	}
	if in.Length > 0 && used+in.Length > quota {
		return nil, errQuota(plan.Name, quota, used)
	}

	// The first chunk decides the type before anything is written.
	body := io.LimitReader(in.Body, max+1)
	first := make([]byte, AttachmentChunkSize)
	n, err := readChunk(body, first)
	if err != nil {
		return nil, errInterrupted(err)
	}
	if n == 0 {
		return nil, invalid("file", "empty_file", "the file is empty")
	}
	if int64(n) > max {
		return nil, errFileTooLarge(max)
	}
	first = first[:n]
	ct, err := servedType(in.Kind, in.DeclaredType, http.DetectContentType(first))
	if err != nil {
		return nil, err
	}
	commentID := ""
	if c != nil {
		commentID = c.ID
	}
	id := newID()
	hash := sha256.New()
	hash.Write(first)
	// writeChunk stores chunk n: the first one creates the upload record.
	writeChunk := func(n int, data []byte) error {
		_, err := s.commit(ctx, log, func() (*change, error) {
			now := s.now().UnixMilli()
			ch := s.newChange(p.Tenant, "attachment.chunk", p.actor())
			ch.plan = plan.Name
			if n == 0 {
				ch.expect(kUpload(id), 0)
				ch.put(kUpload(id), uploadRecord{ID: id, TaskID: t.ID, CommentID: commentID, UploadedBy: p.actor(), StartedAt: now}, 1)
			} else {
				if _, err := v.Get(kUpload(id)); errors.Is(err, storage.ErrNotFound) {
					return nil, errUploadGone
				} else if err != nil {
					return nil, err
				}
				ch.expect(kUpload(id), storage.AnyVersion)
			}
			ch.op(storage.Op{Type: storage.OpPut, Key: kAttChunk(id, n), Value: data, Version: 1})
			if reserve := reservation(n, len(data), in.Length); reserve > 0 {
				ch.add(kUploadBytes(id), reserve)
				ch.addBounded(kStorageCnt, reserve, quota, "storage")
			}
			ch.put(kUploadTouch(id), uploadTouch{LastAt: now}, 1)
			return ch, nil
		})
		var e *Error
		if errors.As(err, &e) && e.Code == "plan_limit_reached" {
			u, _ := counterValue(v, kStorageCnt)
			return errQuota(plan.Name, quota, u)
		}
		return err
	}
	// Once the first chunk was proposed, a failure removes what was written.
	fail := func(err error) (*Attachment, error) {
		if aerr := s.abortUpload(context.WithoutCancel(ctx), p.Tenant, id); aerr != nil {
			s.log.Error("attachment: abort upload", "workspace", p.Tenant, "upload", id, "err", aerr.Error())
		}
		return nil, err
	}
	if err := writeChunk(0, first); err != nil {
		return fail(err)
	}
	if in.Progress != nil {
		in.Progress()
	}
	// The rest is read in order and written by up to uploadPipeline
	// commands in flight, so the log's group commit can batch them.
	total, chunks := int64(n), 1
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		slots    = make(chan struct{}, uploadPipeline)
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	for n == AttachmentChunkSize && !failed() {
		buf := make([]byte, AttachmentChunkSize) // fresh: commands in flight (and observers) hold the others
		n, err = readChunk(body, buf)
		if err != nil {
			setErr(errInterrupted(err))
			break
		}
		if n == 0 {
			break
		}
		if total+int64(n) > max {
			setErr(errFileTooLarge(max))
			break
		}
		hash.Write(buf[:n])
		total += int64(n)
		i, data := chunks, buf[:n]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := writeChunk(i, data); err != nil {
				setErr(err)
			}
		})
		chunks++
		if in.Progress != nil {
			in.Progress()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return fail(firstErr)
	}
	if in.Length >= 0 && total != in.Length {
		return fail(errInterrupted(fmt.Errorf("%d of %d bytes arrived", total, in.Length)))
	}

	rec := attachmentRecord{
		ID: id, TaskID: t.ID, ProjectID: t.ProjectID, CommentID: commentID, Name: cleanName(in.Name, ct),
		ContentType: ct, Kind: in.Kind, Size: total, DurationMS: in.DurationMS, ChunkSize: AttachmentChunkSize,
		Chunks: chunks, SHA256: hex.EncodeToString(hash.Sum(nil)), UploadedBy: p.actor(),
	}
	var thumb []byte
	if isThumbnailable(ct) {
		thumb, rec.ThumbType, rec.Width, rec.Height = makeThumbnail(newChunkReader(v, &rec), ct)
		rec.ThumbSize = int64(len(thumb))
	}
	var out *Attachment
	_, err = s.commit(ctx, log, func() (*change, error) {
		// The task (or comment) may have gone, or the caller's role changed, meanwhile.
		t, c, err := s.uploadTarget(v, p, t.ID, commentID)
		if err != nil {
			return nil, err
		}
		urec, err := v.Get(kUpload(id))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errUploadGone
		}
		if err != nil {
			return nil, err
		}
		brec, err := v.Get(kUploadBytes(id))
		if err != nil {
			return nil, err
		}
		if stored, _ := counterValue(v, kUploadBytes(id)); stored != total {
			return nil, fmt.Errorf("engine: upload %s holds %d bytes, %d were sent", id, stored, total)
		}
		rec.CreatedAt = s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "attachment.create", p.actor())
		ch.expect(kTask(t.ID), storage.AnyVersion)
		if c != nil {
			ch.expect(kComment(c.ID), storage.AnyVersion)
			ch.index(kCommentAttachments(c.ID).Add(id))
		}
		ch.expect(kUpload(id), urec.Version)
		ch.expect(kUploadBytes(id), brec.Version)
		ch.del(kUpload(id))
		ch.del(kUploadBytes(id))
		ch.del(kUploadTouch(id))
		ch.put(kAttachment(id), rec, 1)
		ch.index(kTaskAttachments(t.ID).Add(id))
		if thumb != nil {
			ch.op(storage.Op{Type: storage.OpPut, Key: kAttThumb(id), Value: thumb, Version: 1})
		}
		s.activity(ch, activityInput{Kind: "attachment.added", TargetKind: "attachment", TargetID: id, ProjectID: t.ProjectID, TaskID: t.ID, After: rec.Name})
		out = rec.view()
		return ch, nil
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// reservation is what storing chunk n (of size bytes) adds to an upload's
// hold on the quota. Once total bytes have come, an upload holds them all,
// and at least its declared length: a body of known length reserves all
// of it with its first chunk, so concurrent uploads near the quota either
// fit whole or are refused before they store anything, where reserving
// chunk by chunk could refuse them all, each holding part of the room when
// its next chunk does not fit. A streamed body (length < 0) holds what has
// come; so does a body longer than declared, which fails at the end.
func reservation(n, size int, length int64) int64 {
	held := func(total int64) int64 {
		if total == 0 {
			return 0
		}
		return max(total, length)
	}
	before := int64(n) * AttachmentChunkSize // every chunk but the last is whole
	return held(before+int64(size)) - held(before)
}

// readChunk fills buf from r. Unlike io.ReadFull, only a clean io.EOF ends
// the file: a body cut short (a dropped connection's io.ErrUnexpectedEOF)
// is an error, never a shorter file.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// abortUpload removes an unfinished upload's chunks and gives its bytes back.
func (s *Service) abortUpload(ctx context.Context, tenant, id string) error {
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		rec, err := v.Get(kUpload(id))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errUploadGone
		}
		if err != nil {
			return nil, err
		}
		// The bytes counter's version is expected too: a chunk that lands
		// in between makes this a conflict, and the retry counts it.
		reserved, brec := int64(0), storage.Record{}
		if brec, err = v.Get(kUploadBytes(id)); err == nil {
			reserved, _ = counterValue(v, kUploadBytes(id))
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		ch := s.newChange(tenant, "attachment.abort", "system")
		ch.expect(kUpload(id), rec.Version)
		ch.expect(kUploadBytes(id), brec.Version)
		ch.delRange(kAttChunks(id))
		ch.del(kUpload(id))
		ch.del(kUploadBytes(id))
		ch.del(kUploadTouch(id))
		ch.add(kStorageCnt, -reserved)
		return ch, nil
	})
	if errors.Is(err, errUploadGone) {
		return nil
	}
	return err
}

// CleanAbandonedUploads removes uploads that received no chunk for
// UploadAbandonAfter (a client that went away, a node that crashed
// mid-upload), in every workspace, giving their bytes back. It is
// idempotent; it returns how many it removed.
func (s *Service) CleanAbandonedUploads(ctx context.Context) (int, error) {
	_, sys := s.sys()
	var tenants []string
	if err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		tenants = append(tenants, lastPart(k))
		return nil
	}); err != nil {
		return 0, err
	}
	cutoff := s.now().Add(-UploadAbandonAfter).UnixMilli()
	total := 0
	for _, tenant := range tenants {
		_, v := s.tenant(tenant)
		var stale []string
		if err := v.Scan(storage.K("attup"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			var up uploadRecord
			if err := jsonDecode(r.Value, &up); err != nil {
				return err
			}
			last := up.StartedAt
			if touch, _, err := getRecord[uploadTouch](v, kUploadTouch(up.ID)); err == nil {
				last = max(last, touch.LastAt)
			}
			if last <= cutoff {
				stale = append(stale, up.ID)
			}
			return nil
		}); err != nil {
			return total, err
		}
		for _, id := range stale {
			if err := s.abortUpload(ctx, tenant, id); err != nil {
				return total, fmt.Errorf("engine: clean upload %s: %w", id, err)
			}
			total++
		}
	}
	return total, nil
}

// visibleAttachment loads an attachment on a live task (and comment) the
// caller can see; anything else is not found.
func (s *Service) visibleAttachment(v storage.View, p Principal, id string) (*attachmentRecord, ProjectRole, error) {
	if !validID(id) {
		return nil, "", notFound("attachment")
	}
	a, _, err := getRecord[attachmentRecord](v, kAttachment(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", notFound("attachment")
	}
	if err != nil {
		return nil, "", err
	}
	_, _, _, role, err := s.visibleTask(v, p, a.TaskID)
	if err != nil {
		return nil, "", notFound("attachment")
	}
	if a.CommentID != "" {
		if _, _, err := s.liveComment(v, a.CommentID); err != nil {
			return nil, "", notFound("attachment")
		}
	}
	return a, role, nil
}

// GetAttachment returns an attachment's metadata.
func (s *Service) GetAttachment(ctx context.Context, p Principal, id string) (*Attachment, error) {
	_, v := s.tenant(p.Tenant)
	a, _, err := s.visibleAttachment(v, p, id)
	if err != nil {
		return nil, err
	}
	return a.view(), nil
}

// OpenAttachment returns an attachment's metadata and a reader over its
// content that loads one chunk at a time (it seeks, for range requests).
func (s *Service) OpenAttachment(ctx context.Context, p Principal, id string) (*Attachment, io.ReadSeeker, error) {
	_, v := s.tenant(p.Tenant)
	a, _, err := s.visibleAttachment(v, p, id)
	if err != nil {
		return nil, nil, err
	}
	return a.view(), newChunkReader(v, a), nil
}

// AttachmentThumbnail returns an image's thumbnail and its content type.
func (s *Service) AttachmentThumbnail(ctx context.Context, p Principal, id string) (*Attachment, []byte, string, error) {
	_, v := s.tenant(p.Tenant)
	a, _, err := s.visibleAttachment(v, p, id)
	if err != nil {
		return nil, nil, "", err
	}
	if a.ThumbType == "" {
		return nil, nil, "", &Error{Code: "no_thumbnail", Message: "this attachment has no thumbnail (only PNG, JPEG and GIF images of at most 24 megapixels have one)", Err: ErrNotFound}
	}
	rec, err := v.Get(kAttThumb(id))
	if err != nil {
		return nil, nil, "", err
	}
	return a.view(), rec.Value, a.ThumbType, nil
}

// ListTaskAttachments lists a task's attachments, its comments' included
// (they carry comment_id), oldest first.
func (s *Service) ListTaskAttachments(ctx context.Context, p Principal, taskID string, pg PageRequest) (*Page[Attachment], error) {
	_, v := s.tenant(p.Tenant)
	t, _, _, _, err := s.visibleTask(v, p, taskID)
	if err != nil {
		return nil, err
	}
	return s.attachmentPage(v, kTaskAttachments(t.ID), pg)
}

// ListCommentAttachments lists a comment's attachments, oldest first.
func (s *Service) ListCommentAttachments(ctx context.Context, p Principal, commentID string, pg PageRequest) (*Page[Attachment], error) {
	_, v := s.tenant(p.Tenant)
	c, _, _, err := s.visibleComment(v, p, commentID)
	if err != nil {
		return nil, err
	}
	return s.attachmentPage(v, kCommentAttachments(c.ID), pg)
}

func (s *Service) attachmentPage(v storage.View, prefix storage.Key, pg PageRequest) (*Page[Attachment], error) {
	return scanPage(v, prefix, pg, false, func(k storage.Key, _ storage.Record) (*Attachment, error) {
		a, _, err := getRecord[attachmentRecord](v, kAttachment(lastPart(k)))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if a.CommentID != "" {
			if _, _, err := s.liveComment(v, a.CommentID); err != nil {
				return nil, nil // on a deleted comment
			}
		}
		return a.view(), nil
	})
}

// DeleteAttachment removes an attachment for good (its uploader, or the
// project's Lead) and gives its bytes back to the workspace's quota.
func (s *Service) DeleteAttachment(ctx context.Context, p Principal, id string) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		a, role, err := s.visibleAttachment(v, p, id)
		if err != nil {
			return nil, err
		}
		if a.UploadedBy != p.actor() && role != ProjectLead {
			return nil, forbidden("only its uploader or the project's Lead can delete an attachment")
		}
		if role.rank() < ProjectContributor.rank() {
			return nil, forbidden("your role in this project (%s) does not allow deleting files", role)
		}
		ch := s.newChange(p.Tenant, "attachment.delete", p.actor())
		ch.expect(kAttachment(id), storage.AnyVersion)
		deleteAttachment(ch, a)
		s.activity(ch, activityInput{Kind: "attachment.deleted", TargetKind: "attachment", TargetID: id, ProjectID: a.ProjectID, TaskID: a.TaskID, Before: a.Name})
		return ch, nil
	})
	return err
}

// deleteAttachment adds the removal of an attachment, its chunks, thumbnail
// and index entries, and the return of its bytes, to ch.
func deleteAttachment(ch *change, a *attachmentRecord) {
	ch.del(kAttachment(a.ID))
	ch.delRange(kAttChunks(a.ID))
	ch.del(kAttThumb(a.ID))
	ch.del(kTaskAttachments(a.TaskID).Add(a.ID))
	if a.CommentID != "" {
		ch.del(kCommentAttachments(a.CommentID).Add(a.ID))
	}
	ch.add(kStorageCnt, -a.Size)
}

// purgeAttachments adds to ch the removal of every attachment under index
// (a task's or a comment's), for the trash purge.
func purgeAttachments(ch *change, v storage.View, index storage.Key) error {
	var ids []string
	if err := v.Scan(index, storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		ids = append(ids, lastPart(k))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		a, _, err := getRecord[attachmentRecord](v, kAttachment(id))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		deleteAttachment(ch, a)
	}
	return nil
}

// StorageUsed is the bytes a workspace's attachments (and unfinished
// uploads) hold against its quota.
func (s *Service) StorageUsed(ctx context.Context, p Principal) (used, quota int64, err error) {
	_, quota, err = s.storageQuota(p.Tenant)
	if err != nil {
		return 0, 0, err
	}
	_, v := s.tenant(p.Tenant)
	used, err = counterValue(v, kStorageCnt)
	return used, quota, err
}

// chunkReader reads an attachment's content one stored chunk at a time.
type chunkReader struct {
	v         storage.View
	id        string
	size      int64
	chunkSize int64
	off       int64
	idx       int64
	cur       []byte
}

func newChunkReader(v storage.View, a *attachmentRecord) *chunkReader {
	return &chunkReader{v: v, id: a.ID, size: a.Size, chunkSize: a.ChunkSize, idx: -1}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	idx := r.off / r.chunkSize
	if idx != r.idx {
		rec, err := r.v.Get(kAttChunk(r.id, int(idx)))
		if err != nil {
			return 0, fmt.Errorf("engine: attachment %s chunk %d: %w", r.id, idx, err)
		}
		r.cur, r.idx = rec.Value, idx
	}
	within := r.off - idx*r.chunkSize
	if within >= int64(len(r.cur)) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.cur[within:])
	r.off += int64(n)
	return n, nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("engine: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("engine: negative position")
	}
	r.off = offset
	return offset, nil
}

func isThumbnailable(ct string) bool {
	switch mediaBase(ct) {
	case "image/png", "image/jpeg", "image/gif":
		return true
	}
	return false
}

// thumbnails bounds concurrent image decoding, so many uploads of large
// images cannot exhaust memory.
var thumbnails = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// makeThumbnail scales an image to fit thumbnailMax × thumbnailMax. Images
// whose header claims more than maxImagePixels get none (their size is
// still reported), so a decompression bomb is never decoded.
func makeThumbnail(r io.ReadSeeker, ct string) (thumb []byte, thumbType string, width, height int) {
	cfg, _, err := image.DecodeConfig(bufio.NewReader(r))
	if err != nil {
		return nil, "", 0, 0
	}
	width, height = cfg.Width, cfg.Height
	if width <= 0 || height <= 0 || width > maxImageSide || height > maxImageSide || width*height > maxImagePixels {
		return nil, "", width, height
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, "", width, height
	}
	thumbnails <- struct{}{}
	defer func() { <-thumbnails }()
	var img image.Image
	br := bufio.NewReaderSize(r, 64<<10)
	switch mediaBase(ct) {
	case "image/png":
		img, err = png.Decode(br)
	case "image/jpeg":
		img, err = jpeg.Decode(br)
	case "image/gif":
		img, err = gif.Decode(br)
	}
	if err != nil {
		return nil, "", width, height
	}
	b := img.Bounds()
	tw, th := b.Dx(), b.Dy()
	if tw > thumbnailMax || th > thumbnailMax {
		if tw >= th {
			tw, th = thumbnailMax, max(1, th*thumbnailMax/tw)
		} else {
			tw, th = max(1, tw*thumbnailMax/th), thumbnailMax
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	var out bytes.Buffer
	if mediaBase(ct) == "image/jpeg" {
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
			return nil, "", width, height
		}
		return out.Bytes(), "image/jpeg", width, height
	}
	if err := png.Encode(&out, dst); err != nil {
		return nil, "", width, height
	}
	return out.Bytes(), "image/png", width, height
}
