// The workspace's audit log (Owners and Admins): security-relevant events,
// newest first, paged by cursor. On plans without it the API answers 403
// plan_feature_unavailable {feature, plan}: an upgrade hint is shown instead.

import { useInfiniteQuery } from "@tanstack/react-query";
import { Fragment, useEffect, useState } from "react";
import { Link } from "react-router";
import { api, ApiError, type Page } from "../api/client";
import { keys, useMe, useMemberLookup, usePlans, useWorkspace } from "../api/queries";
import type { AuditEntry } from "../api/types";
import { EmptyState, ErrorState, Loading } from "../components/ui";
import { formatDateTime } from "../lib/format";
import { auditDetailPairs, describeAuditAction, describeAuditActor } from "../lib/security";

const PAGE = 50;

export default function Audit() {
  const me = useMe();
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  useEffect(() => {
    document.title = "Audit log · TeamFlow";
  }, []);
  return (
    <>
      <div className="page-header">
        <h1>Audit log</h1>
      </div>
      {me.data && !isAdmin ? <p className="notice">Only Owners and Admins can see the audit log.</p> : me.data ? <AuditList /> : <Loading />}
    </>
  );
}

function AuditList() {
  const { byId } = useMemberLookup();
  const ws = useWorkspace();
  const [open, setOpen] = useState<number | null>(null);
  const q = useInfiniteQuery({
    queryKey: keys.audit,
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<AuditEntry>>("/audit", { query: { limit: PAGE, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
    staleTime: 15_000,
  });
  if (q.isPending) return <Loading label="Loading the audit log…" />;
  if (q.isError) {
    if (q.error instanceof ApiError && q.error.isPlanFeature) return <PlanFeatureHint error={q.error} />;
    if (q.error instanceof ApiError && q.error.status === 403) return <p className="notice">Only Owners and Admins can see the audit log.</p>;
    return <ErrorState error={q.error} retry={() => q.refetch()} />;
  }
  const entries = q.data.pages.flatMap((p) => p.items);
  if (entries.length === 0) return <EmptyState title="Nothing recorded yet" />;
  const nameOf = (id: string) => byId.get(id)?.name;
  const target = (e: AuditEntry): string => {
    if (!e.target_kind) return "";
    if (e.target_kind === "member" && e.target_id) return nameOf(e.target_id) ?? "a former member";
    if (e.target_kind === "workspace") return ws.data?.name ?? "the workspace";
    if (e.target_kind === "apikey") return typeof e.detail?.name === "string" ? `API key “${e.detail.name}”` : "an API key";
    if (e.target_kind === "session") return "a session";
    return e.target_kind.replace(/_/g, " ");
  };
  return (
    <>
      <p className="muted small">
        Security-relevant events in this workspace, newest first. Each entry is chained to the one before it by its hash, so a changed or removed entry is detected when
        the log is verified.
      </p>
      <div className="table-wrap">
        <table aria-label="Audit log" className="audit-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col" className="hide-narrow">
                Target
              </th>
              <th scope="col">Result</th>
              <th scope="col" className="hide-narrow">
                IP address
              </th>
              <th scope="col">
                <span className="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => {
              const expanded = open === e.seq;
              const detailId = `audit-detail-${e.seq}`;
              const what = describeAuditAction(e.action);
              return (
                <Fragment key={e.seq}>
                  <tr data-action={e.action} data-outcome={e.outcome}>
                    <td className="small">
                      <time dateTime={e.at}>{formatDateTime(e.at)}</time>
                    </td>
                    <td>{describeAuditActor(e.actor, nameOf)}</td>
                    <td>
                      {what}
                      <div className="small muted mono">{e.action}</div>
                    </td>
                    <td className="hide-narrow small">{target(e)}</td>
                    <td>
                      <span className={`badge outcome-${e.outcome}`}>{e.outcome === "success" ? "Success" : e.outcome === "failure" ? "Failed" : "Denied"}</span>
                    </td>
                    <td className="hide-narrow small mono">{e.ip || "—"}</td>
                    <td>
                      <button type="button" className="btn-small" aria-expanded={expanded} aria-controls={expanded ? detailId : undefined} onClick={() => setOpen(expanded ? null : e.seq)} aria-label={`Details of entry ${e.seq}: ${what}`}>
                        Details
                      </button>
                    </td>
                  </tr>
                  {expanded && (
                    <tr id={detailId} className="audit-detail">
                      <td colSpan={7}>
                        <dl className="detail-list">
                          <dt>Entry</dt>
                          <dd>#{e.seq}</dd>
                          {e.target_id && (
                            <>
                              <dt>Target ID</dt>
                              <dd className="mono">
                                {e.target_kind} {e.target_id}
                              </dd>
                            </>
                          )}
                          {auditDetailPairs(e).map(([k, v]) => (
                            <Fragment key={k}>
                              <dt>{k}</dt>
                              <dd>{v}</dd>
                            </Fragment>
                          ))}
                          {e.request_id && (
                            <>
                              <dt>Request ID</dt>
                              <dd className="mono">{e.request_id}</dd>
                            </>
                          )}
                          <dt>Hash</dt>
                          <dd className="mono hash">{e.hash}</dd>
                        </dl>
                      </td>
                    </tr>
                  )}
                </Fragment>
              );
            })}
          </tbody>
        </table>
      </div>
      <div className="form-actions">
        {q.hasNextPage ? (
          <button type="button" onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? "Loading…" : "Load older entries"}
          </button>
        ) : (
          <span className="small muted">That is everything ({entries.length} entries).</span>
        )}
      </div>
    </>
  );
}

export function PlanFeatureHint({ error }: { error: ApiError }) {
  const plans = usePlans();
  const plan = String(error.details?.plan ?? "current");
  const with_ = (plans.data ?? []).filter((p) => p.audit_log).map((p) => p.name);
  return (
    <div className="notice notice-warn" role="status" data-testid="plan-feature-hint">
      <p>
        <strong>The audit log is not part of the {plan} plan.</strong>{" "}
        {with_.length ? `It comes with the ${with_.join(" and ")} plan${with_.length > 1 ? "s" : ""}.` : "A higher plan includes it."} Events are recorded all the same, so
        the whole history shows once the plan has it.
      </p>
      <p>
        <Link to="/settings#plan">See the plan and usage</Link> — plans are changed by whoever runs this TeamFlow installation (the platform operator).
      </p>
    </div>
  );
}
