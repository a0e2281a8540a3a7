// The list view: a table of a project's tasks, filtered and sorted by the
// server, grouped by status, paged with "Load more".

import { useInfiniteQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import { api, type Page } from "../api/client";
import { useMemberLookup } from "../api/queries";
import type { Task } from "../api/types";
import { EmptyState, ErrorState, Loading, PriorityBadge } from "../components/ui";
import { formatDue, isOverdue } from "../lib/format";
import { useProjectContext } from "./ProjectFrame";

const SORTS: { key: string; label: string }[] = [
  { key: "title", label: "Title" },
  { key: "priority", label: "Priority" },
  { key: "due", label: "Due" },
  { key: "created", label: "Created" },
  { key: "updated", label: "Updated" },
];

export const FILTER_KEYS = ["status", "assignee", "tag", "due_before", "due_after", "sort"] as const;

export default function ListView() {
  const project = useProjectContext();
  const { members, nameOf } = useMemberLookup();
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => {
    const f: Record<string, string> = {};
    for (const k of FILTER_KEYS) {
      const v = params.get(k);
      if (v) f[k] = v;
    }
    return f;
  }, [params]);
  const sort = filters.sort ?? "created";

  const list = useInfiniteQuery({
    queryKey: ["tasks", project.id, filters],
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<Task>>(`/projects/${project.id}/tasks`, { query: { ...filters, limit: 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });

  function setFilter(k: string, v: string) {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    setParams(next, { replace: true });
  }

  function toggleSort(key: string) {
    const cur = sort.replace(/^-/, "");
    setFilter("sort", cur === key && !sort.startsWith("-") ? `-${key}` : key);
  }

  const tasks = list.data?.pages.flatMap((p) => p.items) ?? [];
  const groups = project.statuses.map((s) => ({ status: s, tasks: tasks.filter((t) => t.status_id === s.id) })).filter((g) => g.tasks.length > 0);
  const sortState = (key: string): "ascending" | "descending" | "none" => (sort.replace(/^-/, "") === key ? (sort.startsWith("-") ? "descending" : "ascending") : "none");
  const anyFilter = Object.keys(filters).some((k) => k !== "sort");

  return (
    <>
      <form className="filters" role="search" aria-label="Filter tasks" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={filters.status ?? ""} onChange={(e) => setFilter("status", e.target.value)}>
            <option value="">Any</option>
            {project.statuses.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-assignee">Assignee</label>
          <select id="f-assignee" value={filters.assignee ?? ""} onChange={(e) => setFilter("assignee", e.target.value)}>
            <option value="">Anyone</option>
            <option value="me">Me</option>
            {members
              .filter((m) => m.status === "active")
              .map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name}
                </option>
              ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-tag">Tag</label>
          <input id="f-tag" defaultValue={filters.tag ?? ""} onBlur={(e) => setFilter("tag", e.target.value.trim())} onKeyDown={(e) => e.key === "Enter" && setFilter("tag", e.currentTarget.value.trim())} />
        </div>
        <div className="field">
          <label htmlFor="f-due-after">Due after</label>
          <input id="f-due-after" type="date" value={filters.due_after ?? ""} onChange={(e) => setFilter("due_after", e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="f-due-before">Due before</label>
          <input id="f-due-before" type="date" value={filters.due_before ?? ""} onChange={(e) => setFilter("due_before", e.target.value)} />
        </div>
        {anyFilter && (
          <button type="button" onClick={() => setParams(filters.sort ? { sort: filters.sort } : {}, { replace: true })}>
            Clear filters
          </button>
        )}
      </form>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : tasks.length === 0 ? (
        <EmptyState title={anyFilter ? "No task matches these filters" : "No tasks yet"}>
          {!anyFilter && (
            <p>
              Add tasks on the <Link to={`/projects/${project.id}/board`}>board</Link>.
            </p>
          )}
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table aria-label={`Tasks of ${project.name}`}>
            <thead>
              <tr>
                <th scope="col">Key</th>
                {SORTS.slice(0, 3).map((s) => (
                  <th key={s.key} scope="col" aria-sort={sortState(s.key)}>
                    <button type="button" onClick={() => toggleSort(s.key)}>
                      {s.label} {sortState(s.key) === "ascending" ? "▲" : sortState(s.key) === "descending" ? "▼" : ""}
                    </button>
                  </th>
                ))}
                <th scope="col">Assignees</th>
                <th scope="col" className="hide-narrow">Tags</th>
                <th scope="col" className="hide-narrow" aria-sort={sortState("updated")}>
                  <button type="button" onClick={() => toggleSort("updated")}>
                    Updated {sortState("updated") === "ascending" ? "▲" : sortState("updated") === "descending" ? "▼" : ""}
                  </button>
                </th>
              </tr>
            </thead>
            {groups.map((g) => (
              <tbody key={g.status.id}>
                <tr className="group-row">
                  <th colSpan={7} scope="rowgroup">
                    {g.status.name} <span className="muted small">({g.tasks.length})</span>
                  </th>
                </tr>
                {g.tasks.map((t) => (
                  <tr key={t.id}>
                    <td className="project-key">{t.key}</td>
                    <td>
                      <Link to={`/tasks/${t.key}`}>{t.title}</Link>
                      {t.parent_id && <span className="muted small"> · subtask</span>}
                    </td>
                    <td>
                      <PriorityBadge priority={t.priority} />
                    </td>
                    <td className={t.status_category !== "done" && isOverdue(t.due) ? "overdue" : undefined}>{formatDue(t.due)}</td>
                    <td>{t.assignees.map(nameOf).join(", ")}</td>
                    <td className="hide-narrow">{t.tags.join(", ")}</td>
                    <td className="hide-narrow small muted">{new Date(t.updated_at).toLocaleDateString()}</td>
                  </tr>
                ))}
              </tbody>
            ))}
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <p>
          <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            {list.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        </p>
      )}
    </>
  );
}
