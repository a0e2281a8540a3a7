// AI status updates (docs/STATUS_UPDATES.md): pick a project or a team and a
// period, have the update written — for a project its text streams in as the
// writer produces it (server-sent events) — then read it with every cited
// fact ([C1], [P1]…) linked to its task, edit it, and publish it.
// Earlier updates of the same project or team are listed below.

import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { api, ApiError, fetchAll, type Page } from "../api/client";
import { keys, useMe, useMemberLookup, useProjects } from "../api/queries";
import type { AIUsage, StatusFact, StatusUpdate, Team } from "../api/types";
import { useToast } from "../components/toast";
import { EmptyState, ErrorState, FormError, Loading, SelectField } from "../components/ui";
import { formatDateTime } from "../lib/format";
import { fixMentionHtml } from "../lib/html";
import { postStream } from "../lib/sse";

type Scope = "project" | "team";

/** ref → fact, from every list of an update's facts. */
export function factIndex(facts: Record<string, unknown> | undefined): Map<string, StatusFact> {
  const out = new Map<string, StatusFact>();
  for (const v of Object.values(facts ?? {})) {
    if (!Array.isArray(v)) continue;
    for (const f of v) if (f && typeof f === "object" && typeof (f as StatusFact).ref === "string") out.set((f as StatusFact).ref, f as StatusFact);
  }
  return out;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The server's sanitized HTML with each [REF] that names a task made a link to it. */
export function linkRefs(html: string, index: Map<string, StatusFact>): string {
  return html.replace(/\[([A-Z]\d{1,4})\]/g, (m, ref: string) => {
    const f = index.get(ref);
    if (!f) return m;
    if (f.key) return `<a class="ref-link" href="/tasks/${encodeURIComponent(f.key)}" data-route title="${esc(`${f.key} ${f.title ?? ""}`.trim())}">[${ref}]</a>`;
    return `<span class="ref-link" title="${esc(String(f.name ?? ""))}">[${ref}]</span>`;
  });
}

export default function StatusUpdates() {
  const [params, setParams] = useSearchParams();
  const projects = useProjects();
  const teams = useQuery({ queryKey: keys.teams, queryFn: ({ signal }) => fetchAll<Team>("/teams", {}, 10, signal) });
  const usage = useQuery({ queryKey: keys.statusUsage, queryFn: () => api<AIUsage>("/workspace/status-usage") });
  useEffect(() => {
    document.title = "Status updates · TeamFlow";
  }, []);
  const scope: Scope = params.get("team") ? "team" : "project";
  const id = params.get("team") ?? params.get("project") ?? "";
  const choices = scope === "team" ? (teams.data ?? []) : (projects.data ?? []);
  const selected = id || choices[0]?.id || "";

  function choose(s: Scope, v: string) {
    setParams(v ? { [s]: v } : {}, { replace: true });
  }

  return (
    <>
      <div className="page-header">
        <h1>Status updates</h1>
        {usage.data && (
          <span className="muted small" data-testid="status-usage">
            {usage.data.included < 0 ? `${usage.data.used} written this month` : `${usage.data.used} of ${usage.data.included} this month`}
          </span>
        )}
      </div>
      <p className="muted">Where things stand, written from the work itself: every statement cites the tasks and people it comes from.</p>
      {projects.isPending ? (
        <Loading />
      ) : projects.isError ? (
        <ErrorState error={projects.error} retry={() => projects.refetch()} />
      ) : (
        <>
          <div className="card" style={{ display: "flex", gap: "1rem", flexWrap: "wrap", alignItems: "flex-end" }}>
            <SelectField label="For" name="scope" value={scope} onChange={(e) => choose(e.target.value as Scope, e.target.value === "team" ? (teams.data?.[0]?.id ?? "") : (projects.data?.[0]?.id ?? ""))}>
              <option value="project">A project</option>
              <option value="team" disabled={!teams.data?.length}>
                A team{teams.data && !teams.data.length ? " (none yet)" : ""}
              </option>
            </SelectField>
            <SelectField label={scope === "team" ? "Team" : "Project"} name="target" value={selected} onChange={(e) => choose(scope, e.target.value)}>
              {choices.length === 0 && <option value="">None</option>}
              {choices.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.name}
                </option>
              ))}
            </SelectField>
          </div>
          {selected ? <ScopePanel key={scope + selected} scope={scope} id={selected} /> : <EmptyState title="Create a project first" />}
        </>
      )}
    </>
  );
}

function ScopePanel({ scope, id }: { scope: Scope; id: string }) {
  const qc = useQueryClient();
  const [period, setPeriod] = useState<"day" | "week" | "custom">("week");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [streamed, setStreamed] = useState("");
  const [writing, setWriting] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [latest, setLatest] = useState<StatusUpdate | null>(null);
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);
  const base = scope === "team" ? `/teams/${id}` : `/projects/${id}`;
  const list = useInfiniteQuery({
    queryKey: keys.statusUpdates(scope, id),
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<StatusUpdate>>(`${base}/status-updates`, { query: { limit: 10, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });

  async function write(e: FormEvent) {
    e.preventDefault();
    const body: Record<string, string> = {};
    if (period === "custom") {
      if (!from || !to) return setError(new ApiError({ status: 422, code: "invalid", detail: "Choose both dates of the period." }));
      body.from = new Date(from + "T00:00:00").toISOString();
      body.to = new Date(to + "T23:59:59").toISOString();
    } else body.period = period;
    abort.current?.abort();
    const ac = new AbortController();
    abort.current = ac;
    setError(null);
    setStreamed("");
    setLatest(null);
    setWriting(true);
    try {
      let result: StatusUpdate | null = null;
      if (scope === "project") {
        await postStream(
          `${base}/status-updates/stream`,
          body,
          (ev) => {
            const data = JSON.parse(ev.data) as Record<string, unknown>;
            if (ev.event === "text") setStreamed((s) => s + String(data.text ?? ""));
            else if (ev.event === "update") result = data as unknown as StatusUpdate;
            else if (ev.event === "error") throw new ApiError({ status: Number(data.status) || 500, code: String(data.code ?? "error"), detail: String(data.detail ?? "") });
          },
          ac.signal,
        );
      } else {
        result = await api<StatusUpdate>(`${base}/status-updates`, { method: "POST", body });
      }
      if (!result) throw new ApiError({ status: 500, code: "incomplete", detail: "The update stream ended before the update was stored. Try again." });
      setLatest(result);
      void qc.invalidateQueries({ queryKey: keys.statusUpdates(scope, id) });
      void qc.invalidateQueries({ queryKey: keys.statusUsage });
    } catch (err) {
      if ((err as Error)?.name !== "AbortError") setError(err);
    } finally {
      if (abort.current === ac) setWriting(false);
    }
  }

  const older = (list.data?.pages.flatMap((p) => p.items) ?? []).filter((u) => u.id !== latest?.id);
  return (
    <>
      <form className="card" onSubmit={write} aria-labelledby="write-h" style={{ marginTop: "1rem" }}>
        <h2 id="write-h" style={{ marginTop: 0 }}>
          Write an update
        </h2>
        <fieldset>
          <legend>Period</legend>
          <div className="checkbox-list">
            {(
              [
                ["day", "The past day"],
                ["week", "The past week"],
                ["custom", "Dates…"],
              ] as const
            ).map(([v, label]) => (
              <label key={v}>
                <input type="radio" name="period" value={v} checked={period === v} onChange={() => setPeriod(v)} /> {label}
              </label>
            ))}
          </div>
          {period === "custom" && (
            <div style={{ display: "flex", gap: "1rem", flexWrap: "wrap" }}>
              <div className="field">
                <label htmlFor="su-from">From</label>
                <input id="su-from" type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
              </div>
              <div className="field">
                <label htmlFor="su-to">To</label>
                <input id="su-to" type="date" value={to} onChange={(e) => setTo(e.target.value)} />
              </div>
            </div>
          )}
        </fieldset>
        <FormError error={error} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={writing}>
            {writing ? "Writing…" : "Write update"}
          </button>
          {writing && (
            <button type="button" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          )}
        </div>
        {(writing || (streamed && !latest)) && (
          <div aria-live="polite" aria-busy={writing}>
            <p className="small muted">{writing ? (streamed ? "Writing…" : "Reading the project's tasks and activity…") : ""}</p>
            {streamed && (
              <pre className="status-output" data-testid="status-stream">
                {streamed}
              </pre>
            )}
          </div>
        )}
      </form>
      {latest && (
        <section aria-labelledby="latest-h">
          <h2 id="latest-h">New update</h2>
          <UpdateView update={latest} scope={scope} scopeId={id} onChange={setLatest} />
        </section>
      )}
      <section aria-labelledby="older-h">
        <h2 id="older-h">Earlier updates</h2>
        {list.isPending ? (
          <Loading />
        ) : list.isError ? (
          <ErrorState error={list.error} retry={() => list.refetch()} />
        ) : older.length === 0 ? (
          <p className="muted">None yet.</p>
        ) : (
          older.map((u) => <UpdateView key={u.id} update={u} scope={scope} scopeId={id} />)
        )}
        {list.hasNextPage && (
          <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            Load older
          </button>
        )}
      </section>
    </>
  );
}

function UpdateView({ update, scope, scopeId, onChange }: { update: StatusUpdate; scope: Scope; scopeId: string; onChange?: (u: StatusUpdate) => void }) {
  const qc = useQueryClient();
  const me = useMe();
  const { nameOf } = useMemberLookup();
  const { toast, toastError } = useToast();
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(update.text);
  const index = useMemo(() => factIndex(update.facts), [update.facts]);
  const html = useMemo(() => linkRefs(fixMentionHtml(update.text_html), index), [update.text_html, index]);
  const refs = [...index.values()].filter((f) => new RegExp(`\\[${f.ref}\\]`).test(update.text));
  const done = (u: StatusUpdate) => {
    onChange?.(u);
    void qc.invalidateQueries({ queryKey: keys.statusUpdates(scope, scopeId) });
  };
  const save = useMutation({
    mutationFn: () => api<StatusUpdate>(`/status-updates/${update.id}`, { method: "PATCH", version: update.version, body: { text } }),
    onSuccess: (u) => {
      setEditing(false);
      done(u);
      toast({ title: "Update saved", variant: "success" });
    },
  });
  const publish = useMutation({
    mutationFn: () => api<StatusUpdate>(`/status-updates/${update.id}/publish`, { method: "POST" }),
    onSuccess: (u) => {
      done(u);
      toast({ title: "Update published", description: "It is in the activity feed and the weekly digest.", variant: "success" });
    },
    onError: (e) => toastError(e, "publish the update"),
  });
  const canManage = me.data?.role === "owner" || me.data?.role === "admin" || update.created_by === me.data?.id;
  const navigate = useNavigate();
  const nav = (e: React.MouseEvent) => {
    const a = (e.target as HTMLElement).closest("a[data-route]");
    if (!a || e.button !== 0 || e.metaKey || e.ctrlKey) return;
    e.preventDefault();
    navigate(a.getAttribute("href")!);
  };
  return (
    <article className="card status-update" data-testid="status-update" data-status={update.status} aria-label={`Status update of ${formatDateTime(update.created_at)}`}>
      <div className="small muted" style={{ display: "flex", gap: "0.5rem", flexWrap: "wrap", alignItems: "center" }}>
        <span className={`badge${update.status === "published" ? " badge-ok" : ""}`}>{update.status}</span>
        <span>
          {formatDateTime(update.from)} – {formatDateTime(update.to)}
        </span>
        <span>· by {nameOf(update.created_by)}</span>
        <span>· {update.writer === "model" ? `written by ${update.model || "the model"}` : "built-in writer"}</span>
        {update.edited && <span>· edited</span>}
      </div>
      {update.fallback && (
        <p className="notice small" role="note">
          The built-in writer was used: {update.fallback}.
        </p>
      )}
      {editing ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate();
          }}
        >
          <FormError error={save.error} />
          <div className="field">
            <label htmlFor={`su-text-${update.id}`}>Text (Markdown; keep the [references])</label>
            <textarea id={`su-text-${update.id}`} rows={12} value={text} onChange={(e) => setText(e.target.value)} maxLength={65536} />
          </div>
          <div className="form-actions">
            <button type="submit" className="btn-primary" disabled={save.isPending || !text.trim()}>
              {save.isPending ? "Saving…" : "Save"}
            </button>
            <button type="button" onClick={() => (setEditing(false), setText(update.text))}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div className="prose" data-testid="status-text" onClick={nav} dangerouslySetInnerHTML={{ __html: html }} />
      )}
      {refs.length > 0 && (
        <details>
          <summary>References ({refs.length})</summary>
          <ul className="small" data-testid="status-refs">
            {refs.map((f) => (
              <li key={f.ref}>
                <strong>[{f.ref}]</strong>{" "}
                {f.key ? (
                  <a href={`/tasks/${encodeURIComponent(f.key)}`} data-route onClick={nav}>
                    {f.key} {f.title}
                  </a>
                ) : (
                  String(f.name ?? f.title ?? "")
                )}
                {f.status ? <span className="muted"> · {f.status}</span> : null}
              </li>
            ))}
          </ul>
        </details>
      )}
      {canManage && !editing && (
        <div className="form-actions">
          {update.status === "draft" && (
            <button type="button" className="btn-primary" onClick={() => publish.mutate()} disabled={publish.isPending}>
              {publish.isPending ? "Publishing…" : "Publish"}
            </button>
          )}
          <button type="button" onClick={() => setEditing(true)}>
            Edit text
          </button>
        </div>
      )}
    </article>
  );
}
