package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// The records the index reads. They mirror the JSON the engine writes under
// the tenant-relative keys task/<id>, proj/<id> and cmt/<id>; only the fields
// search needs are decoded, so new fields never break the index.

type taskRec struct {
	ID          string   `json:"id"`
	ProjectID   string   `json:"project_id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	StatusID    string   `json:"status_id"`
	Assignees   []string `json:"assignees"`
	Due         string   `json:"due"`
	Tags        []string `json:"tags"`
	UpdatedAt   int64    `json:"updated_at"`
	DeletedAt   int64    `json:"deleted_at"`
}

type projRec struct {
	ID          string       `json:"id"`
	Key         string       `json:"key"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Statuses    []statusInfo `json:"statuses"`
	UpdatedAt   int64        `json:"updated_at"`
	DeletedAt   int64        `json:"deleted_at"`
}

type statusInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
}

type cmtRec struct {
	ID        string `json:"id"`
	TaskID    string `json:"task_id"`
	ProjectID string `json:"project_id"`
	AuthorID  string `json:"author_id"`
	Body      string `json:"body"`
	UpdatedAt int64  `json:"updated_at"`
	DeletedAt int64  `json:"deleted_at"`
}

// Record kinds as they appear in keys, and the kinds of hits.
const (
	keyTask    = "task"
	keyProject = "proj"
	keyComment = "cmt"

	// KindTask, KindProject and KindComment are the kinds of hits.
	KindTask    = "task"
	KindProject = "project"
	KindComment = "comment"
)

var (
	prefixTask    = storage.K(keyTask)
	prefixProject = storage.K(keyProject)
	prefixComment = storage.K(keyComment)
	indexPrefixes = []storage.Key{prefixTask, prefixProject, prefixComment}
)

// Document IDs carry the kind, so the three record spaces can never collide.
func docID(kind, id string) string {
	switch kind {
	case KindTask:
		return "t:" + id
	case KindProject:
		return "p:" + id
	}
	return "c:" + id
}

// splitDocID is the inverse of docID.
func splitDocID(d string) (kind, id string, ok bool) {
	if len(d) < 2 || d[1] != ':' {
		return "", "", false
	}
	switch d[0] {
	case 't':
		return KindTask, d[2:], true
	case 'p':
		return KindProject, d[2:], true
	case 'c':
		return KindComment, d[2:], true
	}
	return "", "", false
}

// classify names the record a tenant-relative key holds: task, proj or cmt
// with its ID, or ok=false for every other key.
func classify(k storage.Key) (kind, id string, ok bool) {
	var kk string
	switch {
	case bytes.HasPrefix(k, prefixTask):
		kk = KindTask
	case bytes.HasPrefix(k, prefixProject):
		kk = KindProject
	case bytes.HasPrefix(k, prefixComment):
		kk = KindComment
	default:
		return "", "", false
	}
	parts, err := k.Parts()
	if err != nil || len(parts) != 2 {
		return "", "", false
	}
	return kk, string(parts[1]), true
}

// touches reports whether op can change an indexed record.
func touches(op storage.Op) bool {
	if op.Space != storage.SpaceTenant {
		return false
	}
	switch op.Type {
	case storage.OpPut, storage.OpDelete:
		for _, p := range indexPrefixes {
			if bytes.HasPrefix(op.Key, p) {
				return true
			}
		}
	case storage.OpDeleteRange:
		return rangeTouches(op)
	}
	return false
}

// rangeTouches reports whether a range delete can remove indexed records.
func rangeTouches(op storage.Op) bool {
	if len(op.Key) == 0 {
		return true
	}
	end := op.End
	if len(end) == 0 {
		end = op.Key.PrefixEnd()
	}
	for _, p := range indexPrefixes {
		if bytes.Compare(op.Key, p.PrefixEnd()) < 0 && bytes.Compare(p, end) < 0 {
			return true
		}
	}
	return false
}

// dueKey normalises a due value the way the engine compares them: a date
// stays YYYY-MM-DD, a date-time becomes UTC RFC 3339, so that both compare
// as strings. Anything else is "" (not due).
func dueKey(due string) string {
	if due == "" {
		return ""
	}
	if len(due) == 10 {
		if _, err := time.Parse(time.DateOnly, due); err == nil {
			return due
		}
	}
	t, err := time.Parse(time.RFC3339, due)
	if err != nil || len(due) > 40 {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// normTag folds a tag the way the engine stores them.
func normTag(t string) string { return strings.ToLower(strings.TrimSpace(t)) }

// recentKey orders documents newest first as a string: updated_at, zero
// padded, then the document ID (a unique tie-break).
func recentKey(updated int64, id string) string {
	return fmt.Sprintf("%015d/%s", max(0, min(updated, 999_999_999_999_999)), id)
}

// dayKey is the UTC day of a unix-ms time, zero padded, so a range of
// days is a range of strings. Recency windows filter on it: one term per
// document, where a numeric field would index sixteen (Bleve's precision
// steps), which made a third of the cost of indexing a task.
func dayKey(ms int64) string {
	return fmt.Sprintf("%06d", max(0, ms)/msPerDay)
}

const msPerDay = 24 * 60 * 60 * 1000

// setUpdated fills the fields every document carries about its last
// update: the stored time (reranking), its day (recency windows) and the
// newest-first sort key.
func setUpdated(f map[string]any, updated int64, id string) {
	f["updated"] = float64(updated)
	f["day"] = dayKey(updated)
	f["recent"] = recentKey(updated, id)
}

// doc is what Bleve indexes for one record.
type doc struct {
	id     string
	fields map[string]any
	task   string // the task a comment belongs to
}

func taskDoc(t *taskRec, stamp, version uint64) doc {
	f := map[string]any{
		"kind":       KindTask,
		"project_id": t.ProjectID,
		"task_id":    t.ID,
		"text":       t.Title + "\n" + t.Description,
		"title":      t.Title,
		"body":       t.Description,
		"status":     t.StatusID,
		"pstatus":    t.ProjectID + "/" + t.StatusID,
		"ver":        strconv.FormatUint(version, 10),
		"num":        strconv.FormatUint(stamp, 10),
	}
	if len(t.Assignees) > 0 {
		f["assignees"] = t.Assignees
	}
	if len(t.Tags) > 0 {
		tags := make([]string, len(t.Tags))
		for i, tg := range t.Tags {
			tags[i] = normTag(tg)
		}
		f["tags"] = tags
	}
	if d := dueKey(t.Due); d != "" {
		f["due"] = d
	}
	setUpdated(f, t.UpdatedAt, docID(KindTask, t.ID))
	return doc{id: docID(KindTask, t.ID), fields: f}
}

func projectDoc(p *projRec, version uint64) doc {
	f := map[string]any{
		"kind":       KindProject,
		"project_id": p.ID,
		"text":       p.Name + "\n" + p.Key + "\n" + p.Description,
		"title":      p.Name,
		"body":       p.Description,
		"ver":        strconv.FormatUint(version, 10),
	}
	setUpdated(f, p.UpdatedAt, docID(KindProject, p.ID))
	return doc{id: docID(KindProject, p.ID), fields: f}
}

func commentDoc(c *cmtRec, version uint64) doc {
	f := map[string]any{
		"kind":       KindComment,
		"project_id": c.ProjectID,
		"task_id":    c.TaskID,
		"text":       c.Body,
		"body":       c.Body,
		"author":     c.AuthorID,
		"ver":        strconv.FormatUint(version, 10),
	}
	setUpdated(f, c.UpdatedAt, docID(KindComment, c.ID))
	return doc{id: docID(KindComment, c.ID), task: c.TaskID, fields: f}
}

func decode[T any](b []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}
