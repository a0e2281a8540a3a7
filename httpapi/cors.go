package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// CORS per workspace (engine/cors.go): a preflight from an origin some
// workspace lists is answered; an actual request gets
// Access-Control-Allow-Origin only when the caller's own workspace lists
// the origin (or, on public routes such as sign-in, when any does).
// Credentials travel as Authorization headers: cookies never cross origins.

const (
	corsAllowHeaders  = "Authorization, Content-Type, If-Match, X-Request-ID, TeamFlow-Min-Index, TeamFlow-Consistency"
	corsExposeHeaders = "ETag, Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, TeamFlow-Applied-Index, X-Request-ID"
)

func allowOrigin(set func(name, value string), origin string) {
	set("Access-Control-Allow-Origin", origin)
	set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// preflight answers CORS preflights for the API.
func (s *Server) preflight(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" || !strings.HasPrefix(c.Request.URL.Path, "/api/") {
		c.Next()
		return
	}
	c.Writer.Header().Add("Vary", "Origin")
	if c.Request.Method != http.MethodOptions || c.GetHeader("Access-Control-Request-Method") == "" {
		c.Next()
		return
	}
	if s.eng.CORSOriginKnown(origin) {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
	}
	// An unknown origin gets the same empty answer without the headers:
	// the browser refuses the request.
	c.AbortWithStatus(http.StatusNoContent)
}
