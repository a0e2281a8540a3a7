// Package licensing holds the plan catalogue (the four tiers of the product
// plan with their limits and features). Signed offline licences, trials and
// the billing lifecycle extend it here; nothing in this package touches the
// store or the clock of a replicated Apply.
package licensing

import (
	"fmt"
	"sort"
)

// Unlimited marks a limit that does not apply.
const Unlimited = -1

// Plan is one tier of the catalogue.
type Plan struct {
	ID   string `json:"id"`
	Name string `json:"name"`

	MaxUsers             int   `json:"max_users"`    // active members, Unlimited = -1
	MaxProjects          int   `json:"max_projects"` // live projects
	StorageBytes         int64 `json:"storage_bytes"`
	HistoryDays          int   `json:"history_days"` // activity retention
	Integrations         int   `json:"integrations"`
	AIUpdatesPerMonth    int   `json:"ai_updates_per_month"`
	AIOverage            bool  `json:"ai_overage" doc:"Updates past the monthly number are allowed and billed as overage"`
	APIRequestsPerUserH  int   `json:"api_requests_per_user_hour"`
	APIRequestsPerTenant int   `json:"api_requests_per_workspace_hour"`

	CustomWorkflows    bool   `json:"custom_workflows"` // custom task statuses and workflows
	SSO                bool   `json:"sso"`
	DedicatedStore     bool   `json:"dedicated_store"`
	AuditLog           bool   `json:"audit_log"`
	AuditExport        bool   `json:"audit_export" doc:"The audit trail can be exported as CSV or JSON"`
	AuditRetentionDays int    `json:"audit_retention_days" doc:"Audit entries are kept at least this many days"`
	IPAllowlist        bool   `json:"ip_allowlist" doc:"Sign-in and API access can be limited to listed networks"`
	AdvancedSecurity   string `json:"advanced_security"` // "", "basic", "advanced"
	Support            string `json:"support"`
	SLA                string `json:"sla"`

	PriceMonthlyCents  int `json:"price_per_user_month_cents"`
	PriceAnnuallyCents int `json:"price_per_user_month_annual_cents"`
}

const gb = int64(1) << 30

// The catalogue, from the product plan's feature matrix.
var catalogue = map[string]Plan{
	"free": {
		ID: "free", Name: "Free",
		MaxUsers: 10, MaxProjects: 5, StorageBytes: 1 * gb, HistoryDays: 30,
		Integrations: 3, AIUpdatesPerMonth: 10,
		APIRequestsPerUserH: 1000, APIRequestsPerTenant: 10000,
		AuditRetentionDays: 730,
		Support:            "community", SLA: "none",
	},
	"starter": {
		ID: "starter", Name: "Starter",
		MaxUsers: 50, MaxProjects: Unlimited, StorageBytes: 100 * gb, HistoryDays: 365,
		Integrations: 10, AIUpdatesPerMonth: 100, AIOverage: true,
		APIRequestsPerUserH: 1000, APIRequestsPerTenant: 10000,
		AuditRetentionDays: 730,
		Support:            "email-48h", SLA: "none",
		PriceMonthlyCents: 1500, PriceAnnuallyCents: 1200,
	},
	"professional": {
		ID: "professional", Name: "Professional",
		MaxUsers: 500, MaxProjects: Unlimited, StorageBytes: Unlimited, HistoryDays: Unlimited,
		Integrations: 50, AIUpdatesPerMonth: Unlimited,
		APIRequestsPerUserH: 1000, APIRequestsPerTenant: 10000,
		CustomWorkflows: true, AuditLog: true, AuditExport: true, AuditRetentionDays: 730, AdvancedSecurity: "basic",
		Support: "email-24h", SLA: "99.9%",
		PriceMonthlyCents: 3000, PriceAnnuallyCents: 2500,
	},
	"enterprise": {
		ID: "enterprise", Name: "Enterprise",
		MaxUsers: Unlimited, MaxProjects: Unlimited, StorageBytes: Unlimited, HistoryDays: Unlimited,
		Integrations: Unlimited, AIUpdatesPerMonth: Unlimited,
		APIRequestsPerUserH: 1000, APIRequestsPerTenant: 10000,
		CustomWorkflows: true, SSO: true, DedicatedStore: true, AuditLog: true, AuditExport: true,
		AuditRetentionDays: 7 * 365, IPAllowlist: true,
		AdvancedSecurity: "advanced", Support: "24x7", SLA: "99.95%",
	},
}

// DefaultPlan is the plan new workspaces start on unless the operator
// configures another.
const DefaultPlan = "free"

// Lookup returns a plan by ID.
func Lookup(id string) (Plan, error) {
	p, ok := catalogue[id]
	if !ok {
		return Plan{}, fmt.Errorf("licensing: unknown plan %q", id)
	}
	return p, nil
}

// Plans lists the catalogue from the smallest tier up.
func Plans() []Plan {
	out := make([]Plan, 0, len(catalogue))
	for _, p := range catalogue {
		out = append(out, p)
	}
	order := map[string]int{"free": 0, "starter": 1, "professional": 2, "enterprise": 3}
	sort.Slice(out, func(i, j int) bool { return order[out[i].ID] < order[out[j].ID] })
	return out
}

// Bound converts a limit into the maximum for a bounded counter.
func Bound(limit int) int64 {
	if limit == Unlimited {
		return 1<<63 - 1
	}
	return int64(limit)
}
