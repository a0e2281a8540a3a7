import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { api, type Page } from "../api/client";
import { keys, useMemberLookup } from "../api/queries";
import type { TrashItem } from "../api/types";
import { useToast } from "../components/toast";
import { EmptyState, ErrorState, Loading } from "../components/ui";
import { formatDateTime } from "../lib/format";

const restorePath: Record<TrashItem["kind"], string> = { project: "/projects", task: "/tasks", comment: "/comments" };

export default function Trash() {
  const qc = useQueryClient();
  const { nameOf } = useMemberLookup();
  const { toast, toastError } = useToast();
  useEffect(() => {
    document.title = "Trash · TeamFlow";
  }, []);
  const list = useInfiniteQuery({
    queryKey: keys.trash,
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<TrashItem>>("/trash", { query: { limit: 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const restore = useMutation({
    mutationFn: (i: TrashItem) => api(`${restorePath[i.kind]}/${i.id}/restore`, { method: "POST" }),
    onSuccess: (_r, i) => {
      toast({ title: `Restored “${i.title}”`, variant: "success" });
      void qc.invalidateQueries({ queryKey: keys.trash });
      void qc.invalidateQueries({ queryKey: keys.projects });
      void qc.invalidateQueries({ queryKey: keys.plan });
      if (i.project_id) void qc.invalidateQueries({ queryKey: keys.board(i.project_id) });
      void qc.invalidateQueries({ queryKey: ["comments"] });
    },
    onError: (e) => toastError(e, "restore it"),
  });
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <div className="page-header">
        <h1>Trash</h1>
      </div>
      <p className="muted">Deleted projects, tasks and comments stay here until they are purged.</p>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : items.length === 0 ? (
        <EmptyState title="The trash is empty" />
      ) : (
        <div className="table-wrap">
          <table aria-label="Deleted items">
            <thead>
              <tr>
                <th scope="col">Item</th>
                <th scope="col">Kind</th>
                <th scope="col" className="hide-narrow">Deleted</th>
                <th scope="col" className="hide-narrow">Purged</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((i) => (
                <tr key={i.kind + i.id}>
                  <td>{i.title || "(untitled)"}</td>
                  <td>{i.kind}</td>
                  <td className="hide-narrow small">
                    {formatDateTime(i.deleted_at)} by {nameOf(i.deleted_by)}
                  </td>
                  <td className="hide-narrow small">{formatDateTime(i.purge_at)}</td>
                  <td>
                    <button type="button" className="btn-small" onClick={() => restore.mutate(i)} disabled={restore.isPending && restore.variables?.id === i.id} aria-label={`Restore ${i.kind} ${i.title}`}>
                      Restore
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          Load more
        </button>
      )}
    </>
  );
}
