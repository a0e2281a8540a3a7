package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/storage"
)

type attachmentEnv struct {
	*apitest.Env
	ws      apitest.Workspace
	project string
	task    string
}

func newAttachmentEnv(t *testing.T, ecfg engine.Config) *attachmentEnv {
	t.Helper()
	ecfg.Mode = engine.ModeCloud
	env := apitest.NewWithEngineConfig(t, ecfg, httpapi.Config{})
	a := &attachmentEnv{Env: env}
	a.ws = env.Signup("files", "Files", "owner@files.test")
	a.project = env.Create("/api/v1/projects", a.ws.Token, map[string]any{"name": "Files project"})
	a.task = env.Create("/api/v1/projects/"+a.project+"/tasks", a.ws.Token, map[string]any{"title": "Has files"})
	return a
}

// upload posts body raw to path with the given headers.
func (a *attachmentEnv) upload(t *testing.T, path, token string, body []byte, headers ...string) *apitest.Response {
	t.Helper()
	h := append([]string{"Content-Type", "application/octet-stream"}, headers...)
	return a.Do("POST", path, token, body, h...)
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestAttachmentRoundTripWithRange(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	content := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640,000 bytes: three chunks
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments?name=../../etc/notes.txt", a.ws.Token, content, "Content-Type", "text/plain")
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	sum := sha256.Sum256(content)
	if att.Size != int64(len(content)) || att.Name != "notes.txt" || att.SHA256 != hex.EncodeToString(sum[:]) ||
		att.Kind != "file" || att.Inline || !strings.HasPrefix(att.ContentType, "text/plain") || att.CommentID != nil {
		t.Fatalf("metadata: %+v", att)
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/attachments/"+att.ID {
		t.Errorf("Location %q", loc)
	}

	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, content) {
		t.Fatalf("download: %d, %d bytes", r.Status, len(r.Body))
	}
	if got := r.Header.Get("Content-Disposition"); !strings.HasPrefix(got, "attachment") || !strings.Contains(got, "notes.txt") {
		t.Errorf("Content-Disposition %q", got)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("headers %v", r.Header)
	}
	// A range across a chunk boundary.
	from, to := 262_000, 263_000
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil, "Range", fmt.Sprintf("bytes=%d-%d", from, to))
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, content[from:to+1]) {
		t.Fatalf("range: %d %d bytes", r.Status, len(r.Body))
	}
	if got := r.Header.Get("Content-Range"); got != fmt.Sprintf("bytes %d-%d/%d", from, to, len(content)) {
		t.Errorf("Content-Range %q", got)
	}
	// The tail.
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil, "Range", "bytes=-5")
	if r.Status != http.StatusPartialContent || string(r.Body) != string(content[len(content)-5:]) {
		t.Fatalf("suffix range: %d %q", r.Status, r.Body)
	}
	// Outside the content: a problem.
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil, "Range", "bytes=9999999-")
	if r.Status != http.StatusRequestedRangeNotSatisfiable || r.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(r.Body), "range_not_satisfiable") {
		t.Fatalf("bad range: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	// The ETag is the content hash.
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil, "If-None-Match", `"`+att.SHA256+`"`)
	if r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.Status)
	}

	var page struct{ Items []engine.Attachment }
	a.Do("GET", "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, nil).JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != att.ID {
		t.Fatalf("list: %+v", page)
	}
	if r := a.Do("GET", "/api/v1/attachments/"+att.ID, a.ws.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if used := storageUsed(t, a); used != int64(len(content)) {
		t.Errorf("storage used %d, want %d", used, len(content))
	}

	// Delete: gone, and the bytes are given back.
	if r := a.Do("DELETE", "/api/v1/attachments/"+att.ID, a.ws.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil); r.Status != http.StatusNotFound {
		t.Errorf("after delete: %d", r.Status)
	}
	if used := storageUsed(t, a); used != 0 {
		t.Errorf("storage used after delete %d", used)
	}
	assertNoChunks(t, a)
}

// The streamed routes are in the OpenAPI document with both body forms.
func TestAttachmentRoutesDocumented(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			RequestBody *struct {
				Content map[string]any `json:"content"`
			} `json:"requestBody"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	a.Do("GET", "/api/v1/openapi.json", "", nil).JSON(t, &doc)
	for _, path := range []string{"/api/v1/tasks/{id}/attachments", "/api/v1/comments/{id}/attachments"} {
		op := doc.Paths[path]["post"]
		if op.RequestBody == nil || op.RequestBody.Content["multipart/form-data"] == nil || op.RequestBody.Content["application/octet-stream"] == nil {
			t.Errorf("%s: request body %+v", path, op.RequestBody)
		}
	}
	if op := doc.Paths["/api/v1/attachments/{id}/content"]["get"]; op.Responses["206"] == nil || op.OperationID != "download-attachment" {
		t.Errorf("download: %+v", op)
	}
}

func storageUsed(t *testing.T, a *attachmentEnv) int64 {
	t.Helper()
	var plan struct {
		StorageUsed int64 `json:"storage_used"`
	}
	a.Do("GET", "/api/v1/workspace/plan", a.ws.Token, nil).JSON(t, &plan)
	return plan.StorageUsed
}

// assertNoChunks checks no unfinished upload is left in the store, and no
// chunk that belongs to no attachment.
func assertNoChunks(t *testing.T, a *attachmentEnv) {
	t.Helper()
	v := a.Store.Tenant(a.ws.ID)
	orphans, uploads := 0, 0
	if err := v.Scan(storage.K("attc"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		parts, err := k.Parts()
		if err != nil {
			return err
		}
		if _, err := v.Get(storage.K("att", string(parts[1]))); err != nil {
			orphans++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"attup", "attub", "attut"} {
		if err := v.Scan(storage.K(prefix), storage.ScanOptions{}, func(storage.Key, storage.Record) error { uploads++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if orphans+uploads != 0 {
		t.Errorf("%d orphan chunks and %d unfinished uploads left", orphans, uploads)
	}
}

func TestAttachmentSniffsHTMLSentAsImage(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	html := []byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>")
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments?name=cat.png", a.ws.Token, html, "Content-Type", "image/png")
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	if !strings.HasPrefix(att.ContentType, "text/html") || att.Inline || att.Thumbnail {
		t.Fatalf("sniffed as %+v", att)
	}
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil)
	ct, cd := r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition")
	if strings.Contains(ct, "html") || strings.Contains(ct, "image") || !strings.HasPrefix(cd, "attachment") ||
		r.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("served as %q, %q, %v", ct, cd, r.Header)
	}
}

func TestAttachmentPNGThumbnail(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	img := pngBytes(t, 800, 400)
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments?name=chart.png", a.ws.Token, img, "Content-Type", "application/octet-stream")
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	if att.ContentType != "image/png" || !att.Inline || !att.Thumbnail || att.Width != 800 || att.Height != 400 {
		t.Fatalf("metadata: %+v", att)
	}
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/thumbnail", a.ws.Token, nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("thumbnail: %d %v", r.Status, r.Header)
	}
	th, err := png.Decode(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	if b := th.Bounds(); b.Dx() != 320 || b.Dy() != 160 {
		t.Fatalf("thumbnail is %v", b)
	}
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil)
	if r.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "inline") {
		t.Errorf("image served as %v", r.Header)
	}
	// A file that is not an image has no thumbnail.
	r = a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, []byte("plain"))
	r.JSON(t, &att)
	if r := a.Do("GET", "/api/v1/attachments/"+att.ID+"/thumbnail", a.ws.Token, nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "no_thumbnail") {
		t.Errorf("no thumbnail: %d %s", r.Status, r.Body)
	}
}

// A PNG whose header claims 30000×30000 pixels is stored but never decoded.
func TestAttachmentDecompressionBombGetsNoThumbnail(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	img := pngBytes(t, 2, 2)
	// Rewrite IHDR's width and height (bytes 16..24) and its CRC.
	bomb := bytes.Clone(img)
	copy(bomb[16:24], []byte{0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30})
	crc := crc32.ChecksumIEEE(bomb[12:29])
	copy(bomb[29:33], []byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments?name=bomb.png", a.ws.Token, bomb)
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	if att.Thumbnail || att.Width != 30000 {
		t.Fatalf("bomb: %+v", att)
	}
}

func TestAttachmentRecordedMessagesMultipart(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	comment := a.Create("/api/v1/tasks/"+a.task+"/comments", a.ws.Token, map[string]any{"body": "listen to this"})
	// The first bytes of a WebM file (EBML header): sniffed as video/webm.
	webm := append([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01}, bytes.Repeat([]byte{0x55}, 4000)...)
	send := func(fields map[string]string, fileType string) *apitest.Response {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for _, k := range []string{"kind", "duration_ms", "name"} {
			if v, ok := fields[k]; ok {
				_ = mw.WriteField(k, v)
			}
		}
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{`form-data; name="file"; filename="recording.webm"`}
		h["Content-Type"] = []string{fileType}
		pw, _ := mw.CreatePart(h)
		_, _ = pw.Write(webm)
		_ = mw.Close()
		return a.Do("POST", "/api/v1/comments/"+comment+"/attachments", a.ws.Token, body.Bytes(), "Content-Type", mw.FormDataContentType())
	}
	r := send(map[string]string{"kind": "audio_message", "duration_ms": "4200"}, "audio/webm;codecs=opus")
	if r.Status != http.StatusCreated {
		t.Fatalf("audio message: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	if att.Kind != "audio_message" || att.ContentType != "audio/webm" || att.DurationMS == nil || *att.DurationMS != 4200 ||
		!att.Inline || att.Name != "recording.webm" || att.CommentID == nil || *att.CommentID != comment {
		t.Fatalf("audio message: %+v", att)
	}
	r = a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", a.ws.Token, nil)
	if r.Header.Get("Content-Type") != "audio/webm" || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "inline") {
		t.Errorf("played as %v", r.Header)
	}
	r = send(map[string]string{"kind": "video_message", "duration_ms": "1000"}, "video/webm")
	if r.Status != http.StatusCreated {
		t.Fatalf("video message: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &att)
	if att.ContentType != "video/webm" || att.Kind != "video_message" {
		t.Fatalf("video message: %+v", att)
	}
	// A message needs its duration, and must be media.
	if r := send(map[string]string{"kind": "video_message"}, "video/webm"); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("no duration: %d %s", r.Status, r.Body)
	}
	r = a.upload(t, "/api/v1/comments/"+comment+"/attachments?kind=audio_message&duration_ms=10", a.ws.Token, []byte("just text"), "Content-Type", "audio/webm")
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "not_a_recording") {
		t.Errorf("text as audio: %d %s", r.Status, r.Body)
	}
	var page struct{ Items []engine.Attachment }
	a.Do("GET", "/api/v1/comments/"+comment+"/attachments", a.ws.Token, nil).JSON(t, &page)
	if len(page.Items) != 2 {
		t.Errorf("comment attachments: %d", len(page.Items))
	}
	// A multipart body without a file part.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("kind", "file")
	_ = mw.Close()
	r = a.Do("POST", "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, body.Bytes(), "Content-Type", mw.FormDataContentType())
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "missing_file") {
		t.Errorf("no file part: %d %s", r.Status, r.Body)
	}
	assertNoChunks(t, a)
}

func TestAttachmentPermissions(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{})
	guestID, guest := a.Join(a.ws, "Gus Guest", "gus@files.test", "guest")
	_, member := a.Join(a.ws, "Mia Member", "mia@files.test", "member")
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, []byte("owner's file"))
	var att engine.Attachment
	r.JSON(t, &att)
	// The guest is not in the project: not found, both ways.
	if r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", guest, []byte("x")); r.Status != http.StatusNotFound {
		t.Errorf("guest upload: %d", r.Status)
	}
	if r := a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", guest, nil); r.Status != http.StatusNotFound {
		t.Errorf("guest download: %d", r.Status)
	}
	// An observer reads but may not upload.
	a.Do("PUT", "/api/v1/projects/"+a.project+"/members/"+guestID, a.ws.Token, map[string]any{"role": "observer"})
	if r := a.Do("GET", "/api/v1/attachments/"+att.ID+"/content", guest, nil); r.Status != http.StatusOK {
		t.Errorf("observer download: %d", r.Status)
	}
	if r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", guest, []byte("x")); r.Status != http.StatusForbidden {
		t.Errorf("observer upload: %d %s", r.Status, r.Body)
	}
	// A member contributes, but deletes only their own.
	if r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", member, []byte("x")); r.Status != http.StatusCreated {
		t.Errorf("member upload: %d %s", r.Status, r.Body)
	}
	if r := a.Do("DELETE", "/api/v1/attachments/"+att.ID, member, nil); r.Status != http.StatusForbidden {
		t.Errorf("member deletes the owner's file: %d", r.Status)
	}
	assertNoChunks(t, a)
}

func TestAttachmentQuotaRefusalLeavesNothing(t *testing.T) {
	a := newAttachmentEnv(t, engine.Config{StorageBytes: 1 << 20, MaxAttachmentBytes: 700 << 10})
	first := bytes.Repeat([]byte{'a'}, 600<<10)
	r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, first)
	if r.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	var kept engine.Attachment
	r.JSON(t, &kept)
	before, err := a.Store.TenantHash(a.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Content-Length tells at once: refused before anything is written.
	r = a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, first)
	if r.Status != http.StatusRequestEntityTooLarge || r.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(r.Body), `"storage_quota_exceeded"`) {
		t.Fatalf("over quota: %d %s", r.Status, r.Body)
	}
	after, _ := a.Store.TenantHash(a.ws.ID)
	if !bytes.Equal(before, after) {
		t.Errorf("a refused upload changed the workspace")
	}
	// Without a length (chunked), the quota stops it part way; what was
	// written is removed again.
	r = postStream(t, a, "/api/v1/tasks/"+a.task+"/attachments", io.LimitReader(repeatReader('b'), 600<<10), -1)
	if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.Body), `"storage_quota_exceeded"`) {
		t.Fatalf("over quota, chunked: %d %s", r.Status, r.Body)
	}
	if used := storageUsed(t, a); used != 600<<10 {
		t.Errorf("storage used %d after the refusal, want %d", used, 600<<10)
	}
	assertNoChunks(t, a)
	var page struct{ Items []engine.Attachment }
	a.Do("GET", "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, nil).JSON(t, &page)
	if len(page.Items) != 1 {
		t.Errorf("%d attachments, want 1", len(page.Items))
	}
	// The per-file cap, with room in the quota: refused part way, removed.
	if r := a.Do("DELETE", "/api/v1/attachments/"+kept.ID, a.ws.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := a.upload(t, "/api/v1/tasks/"+a.task+"/attachments", a.ws.Token, bytes.Repeat([]byte{'c'}, 800<<10)); r.Status != http.StatusRequestEntityTooLarge ||
		!strings.Contains(string(r.Body), `"file_too_large"`) {
		t.Fatalf("too large, with a length: %d %s", r.Status, r.Body)
	}
	r = postStream(t, a, "/api/v1/tasks/"+a.task+"/attachments", io.LimitReader(repeatReader('c'), 800<<10), -1)
	if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.Body), `"file_too_large"`) {
		t.Fatalf("too large: %d %s", r.Status, r.Body)
	}
	if used := storageUsed(t, a); used != 0 {
		t.Errorf("storage used %d, want 0", used)
	}
	assertNoChunks(t, a)
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// prng is a deterministic stream of pseudo-random bytes (xorshift), so a
// large file never exists as a byte slice.
type prng struct{ s uint64 }

func (r *prng) Read(p []byte) (int, error) {
	for i := 0; i+8 <= len(p); i += 8 {
		r.s ^= r.s << 13
		r.s ^= r.s >> 7
		r.s ^= r.s << 17
		v := r.s
		for j := range 8 {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(p) &^ 7; i < len(p); i++ {
		p[i] = byte(i)
	}
	return len(p), nil
}

// postStream uploads body (length -1: chunked transfer encoding).
func postStream(t *testing.T, a *attachmentEnv, path string, body io.Reader, length int64) *apitest.Response {
	t.Helper()
	req, err := http.NewRequest("POST", a.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+a.ws.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// heapSampler records the peak of the live heap (what survives GC) and of
// the in-use heap while it runs.
type heapSampler struct {
	stop      chan struct{}
	wg        sync.WaitGroup
	peakLive  atomic.Uint64
	peakInuse atomic.Uint64
	baseLive  uint64
	baseInuse uint64
	baseTotal uint64
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{})}
	h.baseLive, h.baseInuse, h.baseTotal = heapNow()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			live, inuse, _ := heapNow()
			if live > h.peakLive.Load() {
				h.peakLive.Store(live)
			}
			if inuse > h.peakInuse.Load() {
				h.peakInuse.Store(inuse)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) done() (liveDelta, inuseDelta, allocated int64) {
	close(h.stop)
	h.wg.Wait()
	_, _, total := heapNow()
	return int64(h.peakLive.Load()) - int64(h.baseLive), int64(h.peakInuse.Load()) - int64(h.baseInuse), int64(total - h.baseTotal)
}

var heapMetrics = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

func heapNow() (live, inuse, total uint64) {
	s := make([]metrics.Sample, len(heapMetrics))
	copy(s, heapMetrics)
	metrics.Read(s)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return s[0].Value.Uint64(), ms.HeapInuse, ms.TotalAlloc
}

// A 64 MiB upload made by an io.Reader streams through in chunks: the heap
// never holds more than a few of them.
func TestAttachmentLargeUploadBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB through the store")
	}
	a := newAttachmentEnv(t, engine.Config{})
	const size, heapBound = 64 << 20, 24 << 20
	// A first upload of the same size, unmeasured, brings the store to its
	// steady state: built without cgo, Pebble's memtable arenas (2 x 32 MiB)
	// live on the Go heap and are allocated on first use, then recycled.
	// What is measured after it is what one more upload costs.
	if r := postStream(t, a, "/api/v1/tasks/"+a.task+"/attachments?name=warm.bin", io.LimitReader(&prng{s: 1}, size), -1); r.Status != http.StatusCreated {
		t.Fatalf("warm-up upload: %d %s", r.Status, r.Body)
	}
	hashIn := sha256.New()
	body := io.TeeReader(io.LimitReader(&prng{s: 88172645463325252}, size), hashIn)

	h := startHeapSampler()
	start := time.Now()
	r := postStream(t, a, "/api/v1/tasks/"+a.task+"/attachments?name=big.bin", body, -1)
	upDur := time.Since(start)
	live, inuse, alloc := h.done()
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var att engine.Attachment
	r.JSON(t, &att)
	t.Logf("upload 64 MiB in %v (%.0f MiB/s): peak live heap +%.1f MiB, peak in-use heap +%.1f MiB, allocated %.0f MiB",
		upDur, 64/upDur.Seconds(), float64(live)/(1<<20), float64(inuse)/(1<<20), float64(alloc)/(1<<20))
	if att.Size != size || att.SHA256 != hex.EncodeToString(hashIn.Sum(nil)) {
		t.Fatalf("stored %d bytes, hash %s", att.Size, att.SHA256)
	}
	// The bound is well under the file's size (it is never held whole) and
	// leaves room for a few chunks in flight plus Pebble's flush buffers,
	// whose timing varies from run to run (4-16 MiB measured).
	if live > heapBound {
		t.Errorf("peak live heap grew by %d bytes during a %d-byte upload (bound %d MiB)", live, size, heapBound>>20)
	}

	// The download streams too.
	h = startHeapSampler()
	start = time.Now()
	req, _ := http.NewRequest("GET", a.URL+"/api/v1/attachments/"+att.ID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+a.ws.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hashOut := sha256.New()
	n, err := io.Copy(hashOut, resp.Body)
	resp.Body.Close()
	downDur := time.Since(start)
	live, inuse, _ = h.done()
	if err != nil || n != size || hex.EncodeToString(hashOut.Sum(nil)) != att.SHA256 {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	t.Logf("download 64 MiB in %v (%.0f MiB/s): peak live heap +%.1f MiB, peak in-use heap +%.1f MiB",
		downDur, 64/downDur.Seconds(), float64(live)/(1<<20), float64(inuse)/(1<<20))
	if live > heapBound {
		t.Errorf("peak live heap grew by %d bytes during a %d-byte download (bound %d MiB)", live, size, heapBound>>20)
	}
}

// BenchmarkAttachmentUpload measures upload throughput over loopback
// through the whole stack (HTTP, engine, log, fsynced Pebble): 16 MiB per
// operation, reported as MB/s.
func BenchmarkAttachmentUpload(b *testing.B) {
	a := newAttachmentEnvB(b)
	const size = 16 << 20
	b.SetBytes(size)
	for b.Loop() {
		r := postStreamB(b, a, "/api/v1/tasks/"+a.task+"/attachments", io.LimitReader(&prng{s: 7}, size))
		if r != http.StatusCreated {
			b.Fatalf("upload: %d", r)
		}
	}
}

// BenchmarkAttachmentDownload measures download throughput of a 16 MiB file.
func BenchmarkAttachmentDownload(b *testing.B) {
	a := newAttachmentEnvB(b)
	const size = 16 << 20
	req, _ := http.NewRequest("POST", a.URL+"/api/v1/tasks/"+a.task+"/attachments", io.LimitReader(&prng{s: 7}, size))
	req.Header.Set("Authorization", "Bearer "+a.ws.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var att engine.Attachment
	if err := jsonDecode(resp.Body, &att); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	b.SetBytes(size)
	for b.Loop() {
		req, _ := http.NewRequest("GET", a.URL+"/api/v1/attachments/"+att.ID+"/content", nil)
		req.Header.Set("Authorization", "Bearer "+a.ws.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			b.Fatalf("read %d", n)
		}
	}
}

func newAttachmentEnvB(b *testing.B) *attachmentEnv {
	b.Helper()
	env := apitest.NewWithEngineConfig(b, engine.Config{Mode: engine.ModeCloud}, httpapi.Config{})
	a := &attachmentEnv{Env: env}
	a.ws = env.Signup("bench", "Bench", "owner@bench.test")
	a.project = env.Create("/api/v1/projects", a.ws.Token, map[string]any{"name": "Bench"})
	a.task = env.Create("/api/v1/projects/"+a.project+"/tasks", a.ws.Token, map[string]any{"title": "Files"})
	return a
}

func postStreamB(b *testing.B, a *attachmentEnv, path string, body io.Reader) int {
	req, err := http.NewRequest("POST", a.URL+path, body)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+a.ws.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
