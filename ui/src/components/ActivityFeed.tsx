import { useInfiniteQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, type Page } from "../api/client";
import { useMemberLookup } from "../api/queries";
import type { ActivityEntry } from "../api/types";
import { describeActivity } from "../lib/activity";
import { formatDateTime, timeAgo } from "../lib/format";
import { Avatar, EmptyState, ErrorState, Loading } from "./ui";

/** A paged activity feed (newest first) from a list endpoint of ActivityEntry. */
export function ActivityFeed({ path, queryKey, filter, taskId, emptyText = "Nothing has happened yet." }: { path: string; queryKey: readonly unknown[]; filter?: (e: ActivityEntry) => boolean; taskId?: string; emptyText?: string }) {
  const { nameOf } = useMemberLookup();
  const feed = useInfiniteQuery({
    queryKey,
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<ActivityEntry>>(path, { query: { limit: filter ? 200 : 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  if (feed.isPending) return <Loading />;
  if (feed.isError) return <ErrorState error={feed.error} retry={() => feed.refetch()} />;
  const entries = feed.data.pages.flatMap((p) => p.items).filter((e) => (filter ? filter(e) : true));
  return (
    <>
      {entries.length === 0 ? (
        <EmptyState title={emptyText} />
      ) : (
        <ul className="activity-list">
          {entries.map((e) => (
            <li key={e.id}>
              <Avatar name={nameOf(e.actor)} />
              <div style={{ flex: 1, minWidth: 0 }}>
                <strong>{nameOf(e.actor)}</strong> {describeActivity(e, nameOf)}
                {e.task_id && !filter && e.task_id !== taskId && (
                  <>
                    {" "}
                    · <Link to={`/tasks/${e.task_id}`}>{e.task_key ? `${e.task_key} ${e.task_title ?? ""}`.trim() : "open task"}</Link>
                  </>
                )}
                {!e.task_id && e.project_id && !filter && e.kind.startsWith("project") && (
                  <>
                    {" "}
                    · <Link to={`/projects/${e.project_id}/board`}>open project</Link>
                  </>
                )}
                <div>
                  <time dateTime={e.at} title={formatDateTime(e.at)}>
                    {timeAgo(e.at)}
                  </time>
                </div>
              </div>
            </li>
          ))}
        </ul>
      )}
      {feed.hasNextPage && (
        <p>
          <button type="button" onClick={() => feed.fetchNextPage()} disabled={feed.isFetchingNextPage}>
            {feed.isFetchingNextPage ? "Loading…" : "Load older"}
          </button>
        </p>
      )}
    </>
  );
}
