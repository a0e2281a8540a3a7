package httpapi

import (
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// contentSecurityPolicy allows only the UI's own assets: no CDN, no inline
// script (the build emits none). Logos may come from https URLs.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob: https:; connect-src 'self'; font-src 'self'; media-src 'self' blob:; " +
	"frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"

// serveUI serves the single-page app: a file of the build when the path
// names one, index.html otherwise (client-side routes).
func (s *Server) serveUI(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	if s.uiFS == nil {
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte("<!doctype html><title>TeamFlow</title><p>This build of TeamFlow carries no web UI (built with -tags noui). The API is at /api/v1.</p>"))
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+c.Request.URL.Path), "/")
	if name != "" && name != "index.html" {
		if f, err := s.uiFS.Open(name); err == nil {
			st, err := f.Stat()
			if err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					// Vite names assets by content hash: they never change.
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					h.Set("Cache-Control", "no-cache")
				}
				http.ServeContent(c.Writer, c.Request, name, st.ModTime(), f.(io.ReadSeeker))
				f.Close()
				return
			}
			f.Close()
		}
		if strings.HasPrefix(name, "assets/") {
			writeProblem(c, newProblem(http.StatusNotFound, "not_found", "no such asset"))
			return
		}
	}
	index, err := fs.ReadFile(s.uiFS, "index.html")
	if err != nil {
		writeProblem(c, newProblem(http.StatusNotFound, "not_found", "the UI build has no index.html"))
		return
	}
	h.Set("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", index)
}
