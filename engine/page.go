package engine

import (
	"bytes"
	"encoding/base64"

	"github.com/teamflow/teamflow/storage"
)

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// PageRequest asks for one page of a list.
type PageRequest struct {
	Limit  int
	Cursor string
}

// Page is one page of a list; NextCursor is empty on the last page.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func (pg PageRequest) limit() (int, error) {
	switch {
	case pg.Limit == 0:
		return DefaultPageSize, nil
	case pg.Limit < 1 || pg.Limit > MaxPageSize:
		return 0, invalid("limit", "invalid_limit", "limit must be between 1 and %d", MaxPageSize)
	}
	return pg.Limit, nil
}

// cursorKey decodes an opaque cursor into the key to continue after; it must
// lie under prefix, or the cursor belongs to another list.
func cursorKey(cursor string, prefix storage.Key) (storage.Key, error) {
	if cursor == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= len(prefix) || !bytes.HasPrefix(b, prefix) {
		return nil, invalid("cursor", "invalid_cursor", "the cursor is not valid for this list")
	}
	if _, err := storage.Key(b).Parts(); err != nil {
		return nil, invalid("cursor", "invalid_cursor", "the cursor is not valid for this list")
	}
	return storage.Key(b), nil
}

func encodeCursor(k storage.Key) string { return base64.RawURLEncoding.EncodeToString(k) }

// scanPage lists records under prefix, one page at a time. decode returns
// nil to skip a record the caller may not see.
func scanPage[T any](v storage.View, prefix storage.Key, pg PageRequest, reverse bool, decode func(storage.Key, storage.Record) (*T, error)) (*Page[T], error) {
	limit, err := pg.limit()
	if err != nil {
		return nil, err
	}
	after, err := cursorKey(pg.Cursor, prefix)
	if err != nil {
		return nil, err
	}
	out := &Page[T]{Items: []T{}}
	var last storage.Key
	err = v.Scan(prefix, storage.ScanOptions{After: after, Reverse: reverse}, func(k storage.Key, r storage.Record) error {
		if len(out.Items) == limit {
			out.NextCursor = encodeCursor(last)
			return storage.ErrStop
		}
		item, err := decode(k, r)
		if err != nil {
			return err
		}
		last = append(last[:0], k...)
		if item != nil {
			out.Items = append(out.Items, *item)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
