package engine

import (
	"net/url"
	"slices"
	"strings"

	"github.com/teamflow/teamflow/storage"
)

// CORS per workspace: a workspace lists the web origins (its own domains)
// whose pages may call the API with its credentials. A preflight carries
// no credential, so the platform keeps an index origin → workspaces and
// answers a preflight for any listed origin; the actual request then gets
// Access-Control-Allow-Origin only when the caller's own workspace lists
// the origin. Credentials are bearer tokens or API keys: the session
// cookies are SameSite=Strict and never cross origins.
//
// The index is a platform record, so it is written by a platform command
// after the workspace record changed (reconcileWorkspace in registry.go),
// never by the workspace's own command; a stale entry only answers a
// preflight, since CORSAllowed reads the workspace's own record.

const maxCORSOrigins = 20

func sysCORS(origin, tenant string) storage.Key { return storage.K("cors", origin, tenant) }
func sysCORSOrigin(origin string) storage.Key   { return storage.K("cors", origin) }

// normalizeOrigin turns a configured origin into scheme://host[:port];
// https only, except http for localhost (development).
func normalizeOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	switch {
	case scheme == "https":
	case scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"):
	default:
		return "", false
	}
	return scheme + "://" + host, true
}

func validateCORSOrigins(list []string) ([]string, error) {
	if len(list) > maxCORSOrigins {
		return nil, invalid("cors_origins", "too_many_origins", "at most %d origins", maxCORSOrigins)
	}
	out := make([]string, 0, len(list))
	for i, o := range list {
		n, ok := normalizeOrigin(o)
		if !ok {
			return nil, invalid("cors_origins", "invalid_origin", "cors_origins[%d] must be an https origin such as https://app.example.com (no path)", i)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// indexCORS updates the platform's origin index in ch (a platform command)
// from before to after.
func indexCORS(ch *change, tenant string, before, after []string) {
	for _, o := range before {
		if !slices.Contains(after, o) {
			ch.delSys(sysCORS(o, tenant))
		}
	}
	for _, o := range after {
		if !slices.Contains(before, o) {
			ch.putSys(sysCORS(o, tenant), map[string]bool{"ok": true}, 1)
		}
	}
}

// CORSOriginKnown reports whether any workspace lists origin (for
// preflights, which carry no credential).
func (s *Service) CORSOriginKnown(origin string) bool {
	n, ok := normalizeOrigin(origin)
	if !ok || len(origin) > 256 {
		return false
	}
	_, sys := s.sys()
	found := false
	_ = sys.Scan(sysCORSOrigin(n), storage.ScanOptions{}, func(storage.Key, storage.Record) error {
		found = true
		return storage.ErrStop
	})
	return found
}

// CORSAllowed reports whether tenant lists origin.
func (s *Service) CORSAllowed(tenant, origin string) bool {
	n, ok := normalizeOrigin(origin)
	if !ok || len(origin) > 256 || !validID(tenant) {
		return false
	}
	_, v := s.tenant(tenant)
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	return err == nil && slices.Contains(ws.CORSOrigins, n)
}
