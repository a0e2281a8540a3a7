import { useInfiniteQuery } from "@tanstack/react-query";
import { useEffect } from "react";
import { Link, useSearchParams } from "react-router";
import { api, type Page } from "../api/client";
import { useProjects } from "../api/queries";
import type { Task } from "../api/types";
import { EmptyState, ErrorState, Loading, PriorityBadge } from "../components/ui";
import { formatDue, isOverdue } from "../lib/format";

export default function MyTasks() {
  const [params, setParams] = useSearchParams();
  const sort = params.get("sort") ?? "due";
  const projects = useProjects();
  const projectName = new Map((projects.data ?? []).map((p) => [p.id, p.name]));
  useEffect(() => {
    document.title = "My tasks · TeamFlow";
  }, []);
  const list = useInfiniteQuery({
    queryKey: ["my-tasks", sort],
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<Task>>("/tasks", { query: { sort, limit: 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const tasks = list.data?.pages.flatMap((p) => p.items) ?? [];
  const open = tasks.filter((t) => t.status_category !== "done");
  const done = tasks.filter((t) => t.status_category === "done");

  const table = (rows: Task[], label: string) => (
    <div className="table-wrap" style={{ marginBottom: "1rem" }}>
      <table aria-label={label}>
        <thead>
          <tr>
            <th scope="col">Task</th>
            <th scope="col" className="hide-narrow">Project</th>
            <th scope="col">Status</th>
            <th scope="col">Priority</th>
            <th scope="col">Due</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id}>
              <td>
                <span className="project-key">{t.key}</span> <Link to={`/tasks/${t.key}`}>{t.title}</Link>
              </td>
              <td className="hide-narrow">{projectName.get(t.project_id) ?? ""}</td>
              <td>{t.status}</td>
              <td>
                <PriorityBadge priority={t.priority} />
              </td>
              <td className={t.status_category !== "done" && isOverdue(t.due) ? "overdue" : undefined}>{formatDue(t.due)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );

  return (
    <>
      <div className="page-header">
        <h1>My tasks</h1>
        <div className="field" style={{ margin: 0 }}>
          <label htmlFor="my-sort">Sort by</label>
          <select id="my-sort" value={sort} onChange={(e) => setParams({ sort: e.target.value }, { replace: true })}>
            <option value="due">Due date</option>
            <option value="-priority">Priority</option>
            <option value="-updated">Recently updated</option>
            <option value="-created">Newest</option>
          </select>
        </div>
      </div>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : tasks.length === 0 ? (
        <EmptyState title="Nothing is assigned to you">
          <p>Tasks assigned to you in any project show up here.</p>
        </EmptyState>
      ) : (
        <>
          <h2>Open ({open.length})</h2>
          {open.length ? table(open, "Open tasks assigned to me") : <p className="muted">All done.</p>}
          {done.length > 0 && (
            <>
              <h2>Done ({done.length})</h2>
              {table(done, "Done tasks assigned to me")}
            </>
          )}
        </>
      )}
      {list.hasNextPage && (
        <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          {list.isFetchingNextPage ? "Loading…" : "Load more"}
        </button>
      )}
    </>
  );
}
