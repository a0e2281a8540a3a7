package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
	"github.com/gin-gonic/gin"
	"github.com/teamflow/teamflow/engine"
)

// uploadIdle is how long an upload or a download may stall: each chunk
// that moves extends the connection's deadline by this much, so a large
// file is not cut off by the server's overall read or write timeout.
const uploadIdle = 60 * time.Second

// uploadIn is an upload: the file is the raw request body (any
// Content-Type but multipart/form-data) or the "file" part of a
// multipart/form-data body. The body is read by the handler as it streams
// into the store, never by huma (there is no Body field).
type uploadIn struct {
	IDParam
	Name       string `query:"name" maxLength:"1024" doc:"The file name (default: the multipart file part's filename, or the filename of a Content-Disposition header)"`
	Kind       string `query:"kind" enum:"file,video_message,audio_message" doc:"file (default), or a message recorded in the browser"`
	DurationMS int64  `query:"duration_ms" minimum:"0" maximum:"14400000" doc:"Length of a recording in milliseconds (required for video_message and audio_message)"`

	req *http.Request
	w   http.ResponseWriter
}

// Resolve keeps the request, so the handler can stream its body.
func (in *uploadIn) Resolve(ctx huma.Context) []error {
	gc := humagin.Unwrap(ctx)
	in.req, in.w = gc.Request, gc.Writer
	return nil
}

type attachmentOut struct {
	Location string `header:"Location"`
	Body     *engine.Attachment
}

var binarySchema = &huma.Schema{Type: huma.TypeString, Format: "binary"}

var uploadBody = &huma.RequestBody{
	Required: true,
	Description: "The file, streamed: either the raw body (name, kind and duration_ms in the query; the file name may also come " +
		"from Content-Disposition: attachment; filename=…), or multipart/form-data whose fields name, kind and duration_ms come " +
		"before the part named file. The content type is sniffed from the first bytes; the client's Content-Type is only a hint.",
	Content: map[string]*huma.MediaType{
		"application/octet-stream": {Schema: binarySchema},
		"multipart/form-data": {Schema: &huma.Schema{
			Type: huma.TypeObject,
			Properties: map[string]*huma.Schema{
				"name":        {Type: huma.TypeString, MaxLength: intPtr(1024)},
				"kind":        {Type: huma.TypeString, Enum: []any{"file", "video_message", "audio_message"}},
				"duration_ms": {Type: huma.TypeInteger},
				"file":        binarySchema,
			},
			Required: []string{"file"},
		}},
	},
}

func intPtr(n int) *int { return &n }

func (s *Server) bindAttachments() {
	uploadDoc := "Streams the file into the store in 256 KiB chunks. Limits: the per-file cap (413 file_too_large) and the " +
		"plan's storage quota (413 storage_quota_exceeded); a refused or interrupted upload leaves nothing behind. Needs " +
		"Contributor access to the project. Video and audio messages are uploads with kind and duration_ms."
	huma.Register(s.api, huma.Operation{
		OperationID: "upload-task-attachment", Method: http.MethodPost, Path: "/api/v1/tasks/{id}/attachments", Tags: []string{"Attachments"},
		Summary: "Attach a file (or a recorded message) to a task", Description: uploadDoc, Security: sessionSecurity,
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *uploadIn) (*attachmentOut, error) {
		return s.upload(ctx, in, in.ID, "")
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "upload-comment-attachment", Method: http.MethodPost, Path: "/api/v1/comments/{id}/attachments", Tags: []string{"Attachments"},
		Summary: "Attach a file (or a recorded message) to your comment", Description: uploadDoc, Security: sessionSecurity,
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *uploadIn) (*attachmentOut, error) {
		return s.upload(ctx, in, "", in.ID)
	})
	// Documented after registration: given to huma.Register, a request body
	// schema would make huma read and decode the body itself.
	for _, path := range []string{"/api/v1/tasks/{id}/attachments", "/api/v1/comments/{id}/attachments"} {
		s.api.OpenAPI().Paths[path].Post.RequestBody = uploadBody
	}

	type listOut struct {
		Body *engine.Page[engine.Attachment]
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-task-attachments", Method: http.MethodGet, Path: "/api/v1/tasks/{id}/attachments", Tags: []string{"Attachments"},
		Summary: "A task's attachments, its comments' included (they carry comment_id), oldest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*listOut, error) {
		page, err := s.eng.ListTaskAttachments(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &listOut{Body: page}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-comment-attachments", Method: http.MethodGet, Path: "/api/v1/comments/{id}/attachments", Tags: []string{"Attachments"},
		Summary: "A comment's attachments, oldest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*listOut, error) {
		page, err := s.eng.ListCommentAttachments(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &listOut{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-attachment", Method: http.MethodGet, Path: "/api/v1/attachments/{id}", Tags: []string{"Attachments"},
		Summary: "An attachment's metadata", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{ Body *engine.Attachment }, error) {
		a, err := s.eng.GetAttachment(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Attachment }{Body: a}, nil
	})

	binary := map[string]*huma.MediaType{"application/octet-stream": {Schema: binarySchema}}
	huma.Register(s.api, huma.Operation{
		OperationID: "download-attachment", Method: http.MethodGet, Path: "/api/v1/attachments/{id}/content", Tags: []string{"Attachments"},
		Summary: "An attachment's content (Range requests supported)",
		Description: "Images, audio, video and PDF are served inline with their sniffed type; anything else downloads " +
			"(Content-Disposition: attachment, application/octet-stream). ETag is the content's SHA-256.",
		Security: sessionSecurity,
		Responses: map[string]*huma.Response{
			"200": {Description: "The whole content", Content: binary},
			"206": {Description: "The requested range", Content: binary},
			"416": {Description: "The range is outside the content (problem+json)"},
		},
	}, func(ctx context.Context, in *struct{ IDParam }) (*huma.StreamResponse, error) {
		a, rd, err := s.eng.OpenAttachment(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			gc := humagin.Unwrap(hctx)
			serveAttachment(gc, a, rd)
		}}, nil
	})

	type thumbOut struct {
		ContentType  string `header:"Content-Type"`
		CacheControl string `header:"Cache-Control"`
		Body         []byte
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "attachment-thumbnail", Method: http.MethodGet, Path: "/api/v1/attachments/{id}/thumbnail", Tags: []string{"Attachments"},
		Summary:     "A small preview of an image attachment (at most 320×320, PNG or JPEG)",
		Description: "404 no_thumbnail when the attachment has none (has_thumbnail is false).",
		Security:    sessionSecurity,
		Responses: map[string]*huma.Response{
			"200": {Description: "The thumbnail", Content: map[string]*huma.MediaType{
				"image/png": {Schema: binarySchema}, "image/jpeg": {Schema: binarySchema},
			}},
		},
	}, func(ctx context.Context, in *struct{ IDParam }) (*thumbOut, error) {
		_, b, ct, err := s.eng.AttachmentThumbnail(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &thumbOut{ContentType: ct, CacheControl: "private, max-age=300", Body: b}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-attachment", Method: http.MethodDelete, Path: "/api/v1/attachments/{id}", Tags: []string{"Attachments"},
		Summary: "Delete an attachment for good (its uploader, or the project's Lead); its bytes return to the quota", Security: sessionSecurity,
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.DeleteAttachment(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})
}

// upload streams one file (raw or multipart) into the engine.
func (s *Server) upload(ctx context.Context, in *uploadIn, taskID, commentID string) (*attachmentOut, error) {
	r := in.req
	u := engine.UploadInput{
		TaskID: taskID, CommentID: commentID, Name: in.Name, Kind: in.Kind, DurationMS: in.DurationMS,
		Length: r.ContentLength, DeclaredType: r.Header.Get("Content-Type"), Body: r.Body,
	}
	if u.Name == "" {
		if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
			u.Name = params["filename"]
		}
	}
	rc := http.NewResponseController(in.w)
	extend := func() { _ = rc.SetReadDeadline(time.Now().Add(uploadIdle)) }
	extend()
	u.Progress = extend
	if mt, params, err := mime.ParseMediaType(u.DeclaredType); err == nil && mt == "multipart/form-data" {
		if err := readUploadForm(r.Body, params["boundary"], &u); err != nil {
			return nil, err
		}
	}
	a, err := s.eng.UploadAttachment(ctx, principal(ctx), u)
	if err != nil {
		return nil, attachmentProblem(s.fail(ctx, err))
	}
	return &attachmentOut{Location: "/api/v1/attachments/" + a.ID, Body: a}, nil
}

// readUploadForm reads a multipart body up to its file part, taking the
// fields before it; u.Body becomes the file part, still unread.
func readUploadForm(body io.Reader, boundary string, u *engine.UploadInput) error {
	if boundary == "" {
		return newProblem(http.StatusBadRequest, "invalid_multipart", "multipart/form-data needs a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	u.Length = -1
	for range 16 {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return newProblem(http.StatusBadRequest, "invalid_multipart", "the multipart body does not parse")
		}
		name := part.FormName()
		if name == "file" {
			u.Body, u.DeclaredType = part, part.Header.Get("Content-Type")
			if u.Name == "" {
				u.Name = part.FileName()
			}
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(part, 1025))
		if err != nil {
			return newProblem(http.StatusBadRequest, "invalid_multipart", "the multipart body does not parse")
		}
		if len(b) > 1024 {
			return fieldProblem(name, "a form field may have at most 1024 bytes")
		}
		v := string(b)
		switch name {
		case "name":
			u.Name = v
		case "kind":
			u.Kind = v
		case "duration_ms":
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fieldProblem("duration_ms", "duration_ms is a whole number of milliseconds")
			}
			u.DurationMS = n
		}
	}
	p := fieldProblem("file", "the multipart body has no part named file (fields come before it)")
	p.Code = "missing_file"
	return p
}

func fieldProblem(field, msg string) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "validation_failed", msg)
	p.Field = field
	return p
}

// attachmentProblem gives the size refusals their status: 413.
func attachmentProblem(err error) error {
	var p *Problem
	if errors.As(err, &p) {
		switch p.Code {
		case "storage_quota_exceeded", "file_too_large":
			p.Status, p.Title = http.StatusRequestEntityTooLarge, http.StatusText(http.StatusRequestEntityTooLarge)
		case "upload_interrupted":
			p.Status, p.Title = http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
		}
	}
	return err
}

// serveAttachment writes an attachment's content with http.ServeContent
// (ranges, If-None-Match, If-Range), safely: only images, audio, video and
// PDF inline with their sniffed type; anything else as a download.
func serveAttachment(c *gin.Context, a *engine.Attachment, rd io.ReadSeeker) {
	h := c.Writer.Header()
	disp, ct := "attachment", "application/octet-stream"
	if a.Inline {
		disp, ct = "inline", a.ContentType
	}
	if v := mime.FormatMediaType(disp, map[string]string{"filename": a.Name}); v != "" {
		disp = v
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", disp)
	h.Set("X-Content-Type-Options", "nosniff")
	switch {
	case !a.Inline:
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	case ct != "application/pdf": // a sandbox stops browsers' PDF viewers
		h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'")
	}
	h.Set("Cache-Control", "private, no-cache")
	h.Set("ETag", `"`+a.SHA256+`"`)
	w := &contentWriter{ResponseWriter: c.Writer, rc: http.NewResponseController(c.Writer), req: c.Request}
	http.ServeContent(w, c.Request, "", a.CreatedAt, rd)
}

// contentWriter extends the write deadline while content flows, and turns
// the plain-text errors of http.ServeContent (416, 412) into problems.
type contentWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	req      *http.Request
	extended time.Time
	failed   bool
}

func (w *contentWriter) WriteHeader(code int) {
	if code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.failed = true
	code2 := codeForStatus(code, "")
	detail := "the request cannot be served"
	switch code {
	case http.StatusRequestedRangeNotSatisfiable:
		code2, detail = "range_not_satisfiable", "the requested range lies outside the content"
	case http.StatusPreconditionFailed:
		detail = "the content does not match the request's preconditions"
	}
	p := newProblem(code, code2, detail)
	p.RequestID = requestIDFrom(w.req.Context())
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Del("Content-Disposition")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.ResponseWriter.WriteHeader(code)
	_, _ = w.ResponseWriter.Write(b)
}

func (w *contentWriter) Write(b []byte) (int, error) {
	if w.failed {
		return len(b), nil
	}
	if now := time.Now(); now.Sub(w.extended) > time.Second {
		w.extended = now
		_ = w.rc.SetWriteDeadline(now.Add(uploadIdle))
	}
	return w.ResponseWriter.Write(b)
}

func (w *contentWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
