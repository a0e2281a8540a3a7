// Search (GET /api/v1/search, docs/SEARCH.md): one box that takes the query
// syntax (words, "phrases", -negation, assignee:me, status:done, tag:x,
// project:WEB, due:<2026-12-01, kind:task) and a few filters beside it; hits
// with their highlights, paged by cursor. Saved filters (GET/POST/DELETE
// /api/v1/filters) store the whole query, filters written into it.

import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { api, ApiError, fetchAll, formatWait, type Page } from "../api/client";
import { useMe, useProjects } from "../api/queries";
import { useToast } from "../components/toast";
import { EmptyState, ErrorState, Field, FormError, Loading, Modal, SelectField } from "../components/ui";
import { formatDateTime } from "../lib/format";

export interface SearchItem {
  id: string;
  kind: "task" | "project" | "comment";
  project_id?: string;
  task_id?: string;
  key?: string;
  title: string;
  status?: string;
  score?: number;
  highlights?: Record<string, string[] | null>;
  updated_at?: string;
}

export interface SavedFilter {
  id: string;
  name: string;
  query: string;
  shared: boolean;
  created_by: string;
  created_at: string;
  version: number;
}

export interface SearchFilters {
  kind: string;
  status: string;
  project: string;
  mine: boolean;
}

const FILTER_PARAMS = ["kind", "status", "project"] as const;

/** The query with the filters written into it (what a saved filter stores). */
export function composeQuery(q: string, f: SearchFilters): string {
  const parts = [q.trim()];
  if (f.kind) parts.push(`kind:${f.kind}`);
  if (f.status) parts.push(`status:${f.status}`);
  if (f.project) parts.push(`project:${f.project}`);
  if (f.mine) parts.push("assignee:me");
  return parts.filter(Boolean).join(" ");
}

/** Highlights keep only their <mark> tags (the server escapes everything else). */
export function markOnly(html: string): string {
  return html.replace(/<(?!\/?mark>)[^>]*>/gi, "");
}

const hrefOf = (i: SearchItem) => (i.kind === "project" ? `/projects/${i.project_id ?? i.id}/board` : i.kind === "comment" ? `/tasks/${i.key || i.task_id}` : `/tasks/${i.key || i.id}`);

export default function Search() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const filters: SearchFilters = { kind: params.get("kind") ?? "", status: params.get("status") ?? "", project: params.get("project") ?? "", mine: params.get("assignee") === "me" };
  const [draft, setDraft] = useState(q);
  const [saving, setSaving] = useState(false);
  const projects = useProjects();
  const active = !!(q.trim() || filters.kind || filters.status || filters.project || filters.mine);
  useEffect(() => setDraft(q), [q]);
  useEffect(() => {
    document.title = q ? `${q} · Search · TeamFlow` : "Search · TeamFlow";
  }, [q]);

  const results = useInfiniteQuery({
    queryKey: ["search", q, filters.kind, filters.status, filters.project, filters.mine],
    enabled: active,
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) =>
      api<Page<SearchItem>>("/search", { query: { q, kind: filters.kind, status: filters.status, project: filters.project, assignee: filters.mine ? "me" : "", limit: 20, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
    retry: (n, e) => e instanceof ApiError && e.code === "index_rebuilding" && n < 3,
    retryDelay: (_n, e) => ((e instanceof ApiError && e.retryAfter) || 2) * 1000,
  });

  function update(next: Partial<SearchFilters> & { q?: string }) {
    const p = new URLSearchParams();
    const nq = next.q ?? q;
    if (nq) p.set("q", nq);
    for (const k of FILTER_PARAMS) {
      const v = next[k] ?? filters[k];
      if (v) p.set(k, v);
    }
    if (next.mine ?? filters.mine) p.set("assignee", "me");
    setParams(p);
  }
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    update({ q: draft.trim() });
  }

  const items = results.data?.pages.flatMap((p) => p.items) ?? [];
  const err = results.error instanceof ApiError ? results.error : null;
  return (
    <>
      <div className="page-header">
        <h1>Search</h1>
      </div>
      <form role="search" onSubmit={onSubmit} className="card" aria-label="Search tasks, projects and comments">
        <div className="copy-row">
          <label htmlFor="search-q" className="visually-hidden">
            Search
          </label>
          <input id="search-q" type="search" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder='Words, "phrases", -exclude, assignee:me, status:done, tag:x, due:<2026-12-01' maxLength={1000} aria-describedby="search-hint" autoFocus />
          <button type="submit" className="btn-primary">
            Search
          </button>
        </div>
        <p id="search-hint" className="field-hint">
          Every word must match; the last one also as a prefix. Filters can be typed into the box or chosen here.
        </p>
        <div style={{ display: "flex", gap: "1rem", flexWrap: "wrap", alignItems: "flex-end" }}>
          <SelectField label="Kind" name="kind" value={filters.kind} onChange={(e) => update({ kind: e.target.value })}>
            <option value="">Everything</option>
            <option value="task">Tasks</option>
            <option value="project">Projects</option>
            <option value="comment">Comments</option>
          </SelectField>
          <SelectField label="Status" name="status" value={filters.status} onChange={(e) => update({ status: e.target.value })}>
            <option value="">Any</option>
            <option value="todo">To do</option>
            <option value="in_progress">In progress</option>
            <option value="done">Done</option>
          </SelectField>
          <SelectField label="Project" name="project" value={filters.project} onChange={(e) => update({ project: e.target.value })}>
            <option value="">All projects</option>
            {(projects.data ?? []).map((p) => (
              <option key={p.id} value={p.key}>
                {p.name}
              </option>
            ))}
          </SelectField>
          <label style={{ display: "flex", gap: "0.4rem", alignItems: "center", marginBottom: "0.9rem" }}>
            <input type="checkbox" checked={filters.mine} onChange={(e) => update({ mine: e.target.checked })} /> Assigned to me
          </label>
        </div>
      </form>
      <SavedFilters current={active ? composeQuery(q, filters) : ""} onApply={(query) => setParams({ q: query })} onSave={() => setSaving(true)} />
      {!active ? (
        <EmptyState title="Search tasks, projects and comments">
          <p>Type words, or choose a filter.</p>
        </EmptyState>
      ) : results.isPending ? (
        <Loading label="Searching…" />
      ) : results.isError ? (
        err?.code === "index_rebuilding" ? (
          <div className="notice notice-warn" role="alert">
            The search index is being rebuilt. {err.retryAfter ? `Try again in ${formatWait(err.retryAfter)}.` : "Try again in a moment."}{" "}
            <button type="button" className="btn-small" onClick={() => results.refetch()}>
              Try again
            </button>
          </div>
        ) : err && err.status === 400 ? (
          <div className="form-error" role="alert">
            {err.code === "invalid_query" ? `The query cannot be read: ${err.message}` : err.message}
          </div>
        ) : (
          <ErrorState error={results.error} retry={() => results.refetch()} />
        )
      ) : items.length === 0 ? (
        <EmptyState title="Nothing found">
          <p>Try fewer words, or another filter.</p>
        </EmptyState>
      ) : (
        <>
          <p className="muted small" aria-live="polite" data-testid="search-count">
            {results.hasNextPage ? `${items.length}+ results` : `${items.length} result${items.length === 1 ? "" : "s"}`}
          </p>
          <ul className="inbox-list" aria-label="Search results">
            {items.map((i) => (
              <li key={i.kind + i.id} className="inbox-item" data-kind={i.kind}>
                <div className="inbox-body">
                  <div>
                    <span className="badge">{i.kind}</span> {i.key && <span className="project-key">{i.key}</span>}{" "}
                    <Link to={hrefOf(i)}>{i.highlights?.title?.length ? <span dangerouslySetInnerHTML={{ __html: markOnly(i.highlights.title[0]) }} /> : i.title}</Link>
                    {i.status && <span className="muted small"> · {i.status}</span>}
                  </div>
                  {(i.highlights?.body ?? []).slice(0, 2).map((h, n) => (
                    <div key={n} className="inbox-excerpt small" dangerouslySetInnerHTML={{ __html: "… " + markOnly(h) + " …" }} />
                  ))}
                  {i.updated_at && <span className="small muted">Updated {formatDateTime(i.updated_at)}</span>}
                </div>
              </li>
            ))}
          </ul>
          {results.hasNextPage && (
            <p>
              <button type="button" onClick={() => results.fetchNextPage()} disabled={results.isFetchingNextPage}>
                {results.isFetchingNextPage ? "Loading…" : "More results"}
              </button>
            </p>
          )}
        </>
      )}
      {saving && <SaveFilterDialog query={composeQuery(q, filters)} onClose={() => setSaving(false)} />}
    </>
  );
}

function SavedFilters({ current, onApply, onSave }: { current: string; onApply: (q: string) => void; onSave: () => void }) {
  const qc = useQueryClient();
  const me = useMe();
  const { toastError } = useToast();
  const list = useQuery({ queryKey: ["filters"], queryFn: ({ signal }) => fetchAll<SavedFilter>("/filters", {}, 5, signal) });
  const del = useMutation({
    mutationFn: (f: SavedFilter) => api(`/filters/${f.id}`, { method: "DELETE" }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["filters"] }),
    onError: (e) => toastError(e, "delete the filter"),
  });
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  const filters = list.data ?? [];
  return (
    <section aria-labelledby="filters-h" style={{ margin: "1rem 0" }}>
      <div style={{ display: "flex", gap: "0.75rem", alignItems: "center", flexWrap: "wrap" }}>
        <h2 id="filters-h" style={{ margin: 0, fontSize: "1rem" }}>
          Saved filters
        </h2>
        {current && (
          <button type="button" className="btn-small" onClick={onSave}>
            Save this search
          </button>
        )}
      </div>
      {filters.length === 0 ? (
        <p className="muted small">None yet. Search, then “Save this search”.</p>
      ) : (
        <ul className="tag-list" aria-label="Saved filters" style={{ listStyle: "none", padding: 0, marginTop: "0.5rem" }}>
          {filters.map((f) => (
            <li key={f.id} className="tag-chip" data-filter={f.name}>
              <button type="button" className="btn-ghost" onClick={() => onApply(f.query)} title={f.query} aria-label={`Apply filter ${f.name}: ${f.query}`} style={{ padding: 0, border: "none" }}>
                {f.name}
              </button>
              {f.shared && <span className="muted small"> (shared)</span>}
              {(f.created_by === me.data?.id || (f.shared && isAdmin)) && (
                <button type="button" aria-label={`Delete filter ${f.name}`} onClick={() => del.mutate(f)}>
                  ×
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function SaveFilterDialog({ query, onClose }: { query: string; onClose: () => void }) {
  const qc = useQueryClient();
  const me = useMe();
  const { toast } = useToast();
  const [name, setName] = useState("");
  const [shared, setShared] = useState(false);
  const save = useMutation({
    mutationFn: () => api<SavedFilter>("/filters", { method: "POST", body: { name: name.trim(), query, shared } }),
    onSuccess: (f) => {
      void qc.invalidateQueries({ queryKey: ["filters"] });
      toast({ title: `Saved “${f.name}”`, variant: "success" });
      onClose();
    },
  });
  const fe = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  return (
    <Modal open onOpenChange={(o) => !o && onClose()} title="Save this search" description={`Query: ${query}`}>
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <FormError error={save.error} fields={["name", "query"]} />
        <Field label="Name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} error={fe.name ?? fe.query} autoFocus />
        {me.data?.role !== "guest" && (
          <label style={{ display: "flex", gap: "0.4rem", alignItems: "center" }}>
            <input type="checkbox" checked={shared} onChange={(e) => setShared(e.target.checked)} /> Share with the whole workspace
          </label>
        )}
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={save.isPending || !name.trim()}>
            {save.isPending ? "Saving…" : "Save filter"}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Modal>
  );
}
