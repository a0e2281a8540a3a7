package engine

import (
	"context"
	"net/netip"
)

// IP allowlisting (a plan feature): a workspace may limit sign-in and API
// access to listed networks. It is checked on every authenticated request
// and at every sign-in step, against the address httpapi records for the
// request (the connection's, or X-Forwarded-For from a trusted proxy).

const maxAllowlist = 100

var errIPNotAllowed = &Error{Code: "ip_not_allowed", Message: "this workspace accepts sign-in and API access only from its allowed networks", Err: ErrForbidden}

// validateAllowlist normalises a new allowlist: CIDRs or single addresses,
// at most 100, on a plan that has the feature, and including the address
// of the request that sets it (nobody locks themselves out by a typo).
func (s *Service) validateAllowlist(ctx context.Context, tenant string, list []string) ([]string, error) {
	if len(list) > 0 {
		plan, err := s.plan(tenant)
		if err != nil {
			return nil, err
		}
		if !plan.IPAllowlist {
			return nil, planFeature("IP allowlisting", plan.Name)
		}
	}
	if len(list) > maxAllowlist {
		return nil, invalid("ip_allowlist", "too_many_networks", "at most %d networks", maxAllowlist)
	}
	out := make([]string, 0, len(list))
	prefixes := make([]netip.Prefix, 0, len(list))
	for i, v := range list {
		pf, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, invalid("ip_allowlist", "invalid_network", "ip_allowlist[%d] is neither an address nor a CIDR", i)
			}
			pf = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		pf = pf.Masked()
		out = append(out, pf.String())
		prefixes = append(prefixes, pf)
	}
	if len(prefixes) > 0 {
		if ip := requestInfo(ctx).IP; ip != "" && !inPrefixes(ip, prefixes) {
			return nil, invalid("ip_allowlist", "ip_allowlist_excludes_you", "the list must include the address you are connecting from (%s)", ip)
		}
	}
	return out, nil
}

func inPrefixes(ip string, prefixes []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipAllowed checks the request's address against the workspace's
// allowlist. Calls without a request address (the engine used in-process)
// are not network access and pass.
func (s *Service) ipAllowed(ctx context.Context, tenant string) error {
	if requestInfo(ctx).IP == "" {
		return nil
	}
	_, v := s.tenant(tenant)
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return nil
	}
	return s.ipAllowedIn(ctx, tenant, ws)
}

// ipAllowedIn is ipAllowed with the workspace record already read.
func (s *Service) ipAllowedIn(ctx context.Context, tenant string, ws *workspaceRecord) error {
	ip := requestInfo(ctx).IP
	if ip == "" || len(ws.IPAllowlist) == 0 {
		return nil
	}
	plan, err := s.plan(tenant)
	if err != nil || !plan.IPAllowlist {
		return nil // the plan no longer includes it: not enforced
	}
	prefixes := make([]netip.Prefix, 0, len(ws.IPAllowlist))
	for _, c := range ws.IPAllowlist {
		if pf, err := netip.ParsePrefix(c); err == nil {
			prefixes = append(prefixes, pf)
		}
	}
	if inPrefixes(ip, prefixes) {
		return nil
	}
	return errIPNotAllowed
}

// refuseOutsideAllowlist is ipAllowed for a valid credential: the refusal
// is audited in its workspace (the credential proves it is that
// workspace's account, so the entry is not a stranger's to write).
func (s *Service) refuseOutsideAllowlist(ctx context.Context, tenant, userID string, ws *workspaceRecord) error {
	err := s.ipAllowedIn(ctx, tenant, ws)
	if err != nil {
		s.auditEvent(ctx, tenant, userID, auditInput{Action: "auth.ip_refused", TargetKind: "member", TargetID: userID, Outcome: "denied"})
	}
	return err
}
