// The notification inbox: newest first, all or unread only, mark one or all
// read. Opening an item marks it read and goes to its task. The live
// connection (user:me) invalidates the list when something new arrives.

import { useInfiniteQuery, useMutation, useQueryClient, type InfiniteData } from "@tanstack/react-query";
import { useEffect } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api } from "../api/client";
import { keys, useMemberLookup } from "../api/queries";
import type { Notification, NotificationList } from "../api/types";
import { useToast } from "../components/toast";
import { Avatar, EmptyState, ErrorState, Loading } from "../components/ui";
import { formatDateTime, timeAgo } from "../lib/format";

const WHAT: Record<Notification["kind"], string> = {
  mention: "mentioned you on",
  assigned: "assigned you to",
  comment: "commented on",
  due_soon: "is due soon:",
  status: "changed the status of",
};

export function describeNotification(n: Notification, actor: string): string {
  if (n.kind === "due_soon") return `${n.title || "A task"} is due soon`;
  return `${actor} ${WHAT[n.kind] ?? "updated"} ${n.title || "a task"}`;
}

export default function Inbox() {
  const [params, setParams] = useSearchParams();
  const unreadOnly = params.get("show") === "unread";
  const qc = useQueryClient();
  const nav = useNavigate();
  const { nameOf } = useMemberLookup();
  const { toastError } = useToast();
  useEffect(() => {
    document.title = "Inbox · TeamFlow";
  }, []);
  const list = useInfiniteQuery({
    queryKey: keys.notifications(unreadOnly),
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<NotificationList>("/notifications", { query: { unread: unreadOnly || undefined, limit: 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });

  const markLocally = (id: string | null) => {
    const now = new Date().toISOString();
    for (const u of [false, true]) {
      qc.setQueryData<InfiniteData<NotificationList>>(keys.notifications(u), (d) =>
        d ? { ...d, pages: d.pages.map((p) => ({ ...p, items: p.items.map((n) => (id === null || n.id === id ? { ...n, read_at: n.read_at ?? now } : n)) })) } : d,
      );
    }
  };
  const read = useMutation({
    mutationFn: (n: Notification) => api(`/notifications/${n.id}/read`, { method: "POST" }),
    onMutate: (n) => {
      markLocally(n.id);
      qc.setQueryData<number>(keys.unread, (c) => Math.max(0, (c ?? 1) - 1));
    },
    onError: (e) => toastError(e, "mark it read"),
    onSettled: () => void qc.invalidateQueries({ queryKey: ["notifications"] }),
  });
  const readAll = useMutation({
    mutationFn: () => api("/notifications/read-all", { method: "POST" }),
    onMutate: () => {
      markLocally(null);
      qc.setQueryData<number>(keys.unread, 0);
    },
    onError: (e) => toastError(e, "mark them read"),
    onSettled: () => void qc.invalidateQueries({ queryKey: ["notifications"] }),
  });

  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  const unread = list.data?.pages[0]?.unread ?? 0;
  function open(n: Notification) {
    if (!n.read_at) read.mutate(n);
    if (n.task_id) nav(`/tasks/${n.task_id}`);
  }

  return (
    <>
      <div className="page-header">
        <h1>Inbox</h1>
        <button type="button" onClick={() => readAll.mutate()} disabled={unread === 0 || readAll.isPending}>
          Mark all as read
        </button>
      </div>
      <nav className="tabs" aria-label="Inbox filter">
        <Link to="/inbox" aria-current={!unreadOnly ? "page" : undefined} onClick={(e) => (e.preventDefault(), setParams({}, { replace: true }))}>
          All
        </Link>
        <Link to="/inbox?show=unread" aria-current={unreadOnly ? "page" : undefined} onClick={(e) => (e.preventDefault(), setParams({ show: "unread" }, { replace: true }))}>
          Unread{unread > 0 ? ` (${unread})` : ""}
        </Link>
      </nav>
      <p className="muted small" aria-live="polite" data-testid="unread-summary">
        {list.data ? (unread === 0 ? "Nothing unread." : `${unread} unread`) : ""}
      </p>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : items.length === 0 ? (
        <EmptyState title={unreadOnly ? "You're all caught up" : "No notifications yet"}>
          <p>Mentions, assignments, comments and status changes on tasks you follow show up here. Choose what you hear about in your <Link to="/profile">profile</Link>.</p>
        </EmptyState>
      ) : (
        <ul className="inbox-list" aria-label="Notifications">
          {items.map((n) => {
            const who = nameOf(n.actor);
            const text = describeNotification(n, who);
            return (
              <li key={n.id} className="inbox-item" data-unread={!n.read_at} data-kind={n.kind}>
                <Avatar name={n.actor === "system" ? "TeamFlow" : who} />
                <div className="inbox-body">
                  <div>
                    {!n.read_at && <span className="visually-hidden">Unread: </span>}
                    {n.urgent && <span className="badge prio-urgent">urgent</span>}{" "}
                    {n.task_id ? (
                      <a
                        href={`/tasks/${n.task_id}`}
                        onClick={(e) => {
                          if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
                          e.preventDefault();
                          open(n);
                        }}
                      >
                        {text}
                      </a>
                    ) : (
                      text
                    )}
                  </div>
                  {n.excerpt && <div className="inbox-excerpt small">“{n.excerpt}”</div>}
                  <time className="small muted" dateTime={n.created_at} title={formatDateTime(n.created_at)}>
                    {timeAgo(n.created_at)}
                  </time>
                </div>
                {!n.read_at && (
                  <button type="button" className="btn-small" onClick={() => read.mutate(n)} aria-label={`Mark read: ${text}`}>
                    Mark read
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {list.hasNextPage && (
        <p>
          <button type="button" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            {list.isFetchingNextPage ? "Loading…" : "Load older"}
          </button>
        </p>
      )}
    </>
  );
}
