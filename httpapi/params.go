package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

// PageParams are the query parameters of every list.
type PageParams struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"200" doc:"Page size (default 50, at most 200)"`
	Cursor string `query:"cursor" maxLength:"2048" doc:"The next_cursor of the previous page"`
}

func (p PageParams) page() engine.PageRequest {
	return engine.PageRequest{Limit: p.Limit, Cursor: p.Cursor}
}

type IDParam struct {
	ID string `path:"id" maxLength:"64" doc:"Resource ID"`
}

type IfMatchParam struct {
	IfMatch string `header:"If-Match" maxLength:"64" doc:"The resource's ETag (its version): the change applies only if it is still current, else 412"`
}

// version parses If-Match; 0 means "no condition". A value that is not a
// version can never match, so it fails the condition.
func (p IfMatchParam) version() (uint64, error) {
	v := strings.TrimSpace(p.IfMatch)
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, newProblem(http.StatusPreconditionFailed, "precondition_failed", "If-Match does not name a current version of this resource")
	}
	return n, nil
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// nullableString is a PATCH field that distinguishes absent, null (clear)
// and a value.
type nullableString struct {
	Set   bool
	Null  bool
	Value string
}

func (n *nullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Null = true
		return nil
	}
	return json.Unmarshal(b, &n.Value)
}

// Schema describes the field as a nullable string.
func (nullableString) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Nullable: true, MaxLength: ptrInt(4096)}
}

var _ huma.SchemaProvider = nullableString{}

func ptrInt(n int) *int { return &n }
