package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/licensing"
)

func (s *Server) bindPlatform(reg *prometheus.Registry) {
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	s.gin.GET("/metrics", func(c *gin.Context) {
		if s.cfg.MetricsToken != "" {
			tok := bearerToken(c.GetHeader("Authorization"))
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.MetricsToken)) != 1 {
				writeProblem(c, newProblem(http.StatusUnauthorized, "unauthenticated", "/metrics needs the metrics bearer token"))
				return
			}
		}
		metrics.ServeHTTP(c.Writer, c.Request)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-plans", Method: http.MethodGet, Path: "/api/v1/plans", Tags: []string{"Workspace"},
		Summary: "The plan catalogue",
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Items []licensing.Plan `json:"items"`
		}
	}, error) {
		out := &struct {
			Body struct {
				Items []licensing.Plan `json:"items"`
			}
		}{}
		out.Body.Items = licensing.Plans()
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-list-workspaces", Method: http.MethodGet, Path: "/api/v1/platform/workspaces", Tags: []string{"Platform"},
		Summary: "Every workspace on this installation (platform operator)", Security: operatorSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct {
		Body *engine.Page[engine.WorkspaceSummary]
	}, error) {
		page, err := s.eng.ListWorkspaces(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.WorkspaceSummary]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-set-plan", Method: http.MethodPut, Path: "/api/v1/platform/workspaces/{slug}/plan", Tags: []string{"Platform"},
		Summary: "Move a workspace to another plan (platform operator; recorded in the workspace's activity)", Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Slug string `path:"slug" maxLength:"64"`
		Body struct {
			Plan string `json:"plan" enum:"free,starter,professional,enterprise"`
		}
	}) (*struct{ Body *engine.WorkspaceSummary }, error) {
		ws, err := s.eng.SetPlan(ctx, principal(ctx), in.Slug, in.Body.Plan)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.WorkspaceSummary }{Body: ws}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-read-audit", Method: http.MethodGet, Path: "/api/v1/platform/workspaces/{slug}/audit", Tags: []string{"Platform"},
		Summary:     "A workspace's stored audit chain and retention anchor, for teamflow audit verify (platform operator; the read is itself audited)",
		Description: "The chained part of each entry only: the personal data kept beside the entries (IPs, user agents, names) is not included.",
		Security:    operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Slug string `path:"slug" maxLength:"64"`
	}) (*struct{ Body *engine.AuditChain }, error) {
		chain, err := s.eng.PlatformReadAudit(ctx, principal(ctx), in.Slug)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.AuditChain }{Body: chain}, nil
	})
}
