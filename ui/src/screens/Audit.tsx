// The workspace's audit log (Owners and Admins): security-relevant events,
// newest first, paged by cursor, filtered by actor, action (or prefix) and
// time range (kept in the URL); exported as CSV or JSON (a plan feature: the
// refusal's message is shown); and the hash chain verified on demand. On
// plans without the log the API answers 403 plan_feature_unavailable
// {feature, plan}: an upgrade hint is shown instead.

import { useInfiniteQuery, useMutation } from "@tanstack/react-query";
import { Fragment, useEffect, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { api, ApiError, buildUrl, readCookie, refreshSession, type Page } from "../api/client";
import { keys, useMe, useMemberLookup, usePlans, useWorkspace } from "../api/queries";
import type { AuditEntry, AuditVerification } from "../api/types";
import { EmptyState, ErrorState, Loading } from "../components/ui";
import { formatDateTime } from "../lib/format";
import { auditDetailPairs, auditFilterQuery, AUDIT_ACTION_SUGGESTIONS, checkAuditRange, describeAuditAction, describeAuditActor, type AuditFilters } from "../lib/security";

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

function useAuditFilters(): [AuditFilters, (f: AuditFilters) => void] {
  const [params, setParams] = useSearchParams();
  const f: AuditFilters = { actor: params.get("actor") ?? "", action: params.get("action") ?? "", from: params.get("from") ?? "", to: params.get("to") ?? "" };
  const set = (n: AuditFilters) => {
    const next: Record<string, string> = {};
    for (const [k, v] of Object.entries(n)) if (v) next[k] = v;
    setParams(next, { replace: true });
  };
  return [f, set];
}

function AuditList() {
  const { byId } = useMemberLookup();
  const ws = useWorkspace();
  const [open, setOpen] = useState<number | null>(null);
  const [filters, setFilters] = useAuditFilters();
  const query = auditFilterQuery(filters);
  const q = useInfiniteQuery({
    queryKey: keys.auditFiltered(query),
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<AuditEntry>>("/audit", { query: { ...query, limit: PAGE, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
    staleTime: 15_000,
  });
  const filtered = Object.values(query).some(Boolean);
  if (q.isError && q.error instanceof ApiError && q.error.isPlanFeature) return <PlanFeatureHint error={q.error} />;
  if (q.isError && q.error instanceof ApiError && q.error.status === 403) return <p className="notice">Only Owners and Admins can see the audit log.</p>;
  const head = (
    <>
      <p className="muted small">
        Security-relevant events in this workspace, newest first. Each entry is chained to the one before it by its hash, so a changed or removed entry is detected when
        the log is verified.
      </p>
      <AuditTools filters={query} />
      <AuditFilterForm key={JSON.stringify(filters)} filters={filters} onApply={setFilters} />
    </>
  );
  if (q.isPending) return (<>{head}<Loading label="Loading the audit log…" /></>);
  if (q.isError) return (<>{head}<ErrorState error={q.error} retry={() => q.refetch()} /></>);
  const entries = q.data.pages.flatMap((p) => p.items);
  if (entries.length === 0)
    return (
      <>
        {head}
        <EmptyState title={filtered ? "No entries match these filters" : "Nothing recorded yet"}>
          {filtered && (
            <button type="button" onClick={() => setFilters({ actor: "", action: "", from: "", to: "" })}>
              Clear filters
            </button>
          )}
        </EmptyState>
      </>
    );
  const nameOf = (id: string) => byId.get(id)?.name;
  const target = (e: AuditEntry): string => {
    if (!e.target_kind) return "";
    if (e.target_kind === "member" && e.target_id) return nameOf(e.target_id) ?? "a former member";
    if (e.target_kind === "workspace") return ws.data?.name ?? "the workspace";
    if (e.target_kind === "apikey") return typeof e.detail?.name === "string" ? `API key “${e.detail.name}”` : "an API key";
    if (e.target_kind === "session") return "a session";
    // A sign-in with an email no account has: the email typed, kept as personal data.
    if (e.target_kind === "email") return typeof e.detail?.email === "string" ? e.detail.email : "an unknown email";
    return e.target_kind.replace(/_/g, " ");
  };
  return (
    <>
      {head}
      <p className="small muted" role="status" data-testid="audit-count">
        {filtered ? `Showing ${entries.length}${q.hasNextPage ? "+" : ""} matching ${entries.length === 1 ? "entry" : "entries"}.` : ""}
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

function AuditFilterForm({ filters, onApply }: { filters: AuditFilters; onApply: (f: AuditFilters) => void }) {
  const { members } = useMemberLookup();
  const [f, setF] = useState(filters);
  const [error, setError] = useState("");
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    const problem = checkAuditRange(f);
    setError(problem);
    if (!problem) onApply({ ...f, action: f.action.trim() });
  }
  const set = (k: keyof AuditFilters) => (e: { target: { value: string } }) => setF((x) => ({ ...x, [k]: e.target.value }));
  return (
    <form className="audit-filters" onSubmit={onSubmit} aria-label="Filter the audit log" noValidate>
      <div className="field">
        <label htmlFor="audit-actor">Who</label>
        <select id="audit-actor" value={f.actor} onChange={set("actor")}>
          <option value="">Anyone</option>
          {members.map((m) => (
            <option key={m.id} value={m.id}>
              {m.name}
            </option>
          ))}
          <option value="system">TeamFlow (automatic)</option>
          <option value="operator">The platform operator</option>
          <option value="anonymous">Someone not signed in</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor="audit-action">Action</label>
        <input id="audit-action" list="audit-actions" value={f.action} onChange={set("action")} placeholder="e.g. auth. or mfa.enrol" maxLength={64} aria-describedby="audit-action-hint" />
        <span id="audit-action-hint" className="visually-hidden">
          One action, or every action under a prefix ending in a dot
        </span>
        <datalist id="audit-actions">
          {AUDIT_ACTION_SUGGESTIONS.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
      </div>
      <div className="field">
        <label htmlFor="audit-from">From</label>
        <input id="audit-from" type="datetime-local" value={f.from} onChange={set("from")} aria-invalid={error ? true : undefined} aria-describedby={error ? "audit-range-error" : undefined} />
      </div>
      <div className="field">
        <label htmlFor="audit-to">Until</label>
        <input id="audit-to" type="datetime-local" value={f.to} onChange={set("to")} aria-invalid={error ? true : undefined} aria-describedby={error ? "audit-range-error" : undefined} />
      </div>
      <div className="row-actions">
        <button type="submit" className="btn-primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            setError("");
            onApply({ actor: "", action: "", from: "", to: "" });
          }}
        >
          Clear
        </button>
      </div>
      {error && (
        <p id="audit-range-error" className="field-error" role="alert" style={{ flexBasis: "100%" }}>
          {error}
        </p>
      )}
    </form>
  );
}

/** Downloads the export with the page's session; a refusal becomes an ApiError (its problem message is shown). */
async function downloadExport(query: Record<string, string>, format: "csv" | "json"): Promise<string> {
  const url = buildUrl("/audit/export", { ...query, format });
  const get = () => fetch(url, { credentials: "same-origin", headers: { Accept: format === "csv" ? "text/csv, application/problem+json" : "application/json, application/problem+json" } });
  const csrf = readCookie("tf_csrf");
  let res = await get().catch(() => null);
  if (res?.status === 401 && (await refreshSession(fetch, csrf))) res = await get().catch(() => null);
  if (!res) throw new ApiError({ status: 0, code: "network", detail: "The server could not be reached. Check your connection and try again." });
  if (!res.ok) {
    const text = await res.text();
    let p: Partial<ApiError> & { status?: number; code?: string; detail?: string; details?: Record<string, unknown> } = {};
    try {
      p = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    throw new ApiError({ status: res.status, code: p.code ?? "error", detail: p.detail ?? (text || res.statusText), details: p.details });
  }
  const blob = await res.blob();
  const name = /filename="?([^";]+)"?/.exec(res.headers.get("Content-Disposition") ?? "")?.[1] ?? `audit.${format}`;
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 1000);
  return name;
}

function AuditTools({ filters }: { filters: Record<string, string> }) {
  const plans = usePlans();
  const exp = useMutation({ mutationFn: (format: "csv" | "json") => downloadExport(filters, format) });
  const verify = useMutation({ mutationFn: () => api<AuditVerification>("/audit/verify") });
  const withExport = (plans.data ?? []).filter((p) => p.audit_export).map((p) => p.name);
  const expError = exp.error instanceof ApiError ? exp.error : null;
  return (
    <div>
      <div className="audit-tools" role="group" aria-label="Export and verify">
        <button type="button" onClick={() => exp.mutate("csv")} disabled={exp.isPending}>
          Export CSV
        </button>
        <button type="button" onClick={() => exp.mutate("json")} disabled={exp.isPending}>
          Export JSON
        </button>
        <button type="button" onClick={() => verify.mutate()} disabled={verify.isPending}>
          {verify.isPending ? "Verifying…" : "Verify the chain"}
        </button>
        {exp.isPending && <span className="small muted">Preparing the export…</span>}
      </div>
      {exp.isSuccess && (
        <p className="small muted" role="status">
          Downloaded {exp.data}.
        </p>
      )}
      {exp.isError && (
        <div className="notice notice-warn" role="alert" data-testid="export-error">
          {expError?.isPlanFeature ? (
            <>
              <strong>Exporting the audit log is not part of the {String(expError.details?.plan ?? "current")} plan.</strong>{" "}
              {withExport.length ? `It comes with the ${withExport.join(" and ")} plan${withExport.length > 1 ? "s" : ""}. ` : ""}
              {expError.message}
            </>
          ) : (
            <>The export failed: {expError?.message ?? "something went wrong."}</>
          )}
        </div>
      )}
      {verify.isError && <ErrorState error={verify.error} />}
      {verify.data &&
        (verify.data.ok ? (
          <p className="notice notice-ok" role="status" data-testid="verify-result">
            <strong>The chain is intact.</strong> {verify.data.entries} {verify.data.entries === 1 ? "entry" : "entries"} checked up to #{verify.data.head_seq}, {formatDateTime(verify.data.checked_at)}.
          </p>
        ) : (
          <p className="notice notice-warn" role="alert" data-testid="verify-result">
            <strong>The chain does not verify{verify.data.first_bad_seq ? ` from entry #${verify.data.first_bad_seq}` : ""}.</strong> {verify.data.problem ?? "An entry was altered, removed, reordered or inserted."} (
            {verify.data.entries} entries checked.)
          </p>
        ))}
    </div>
  );
}
