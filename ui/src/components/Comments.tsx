// A task's comment thread: top-level comments with their replies, a composer
// with @mentions, replying and deleting one's own comments.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { api, fetchAll } from "../api/client";
import { keys, useMe, useMemberLookup } from "../api/queries";
import type { Comment, Task } from "../api/types";
import { formatDateTime, timeAgo } from "../lib/format";
import { fixMentionHtml } from "../lib/html";
import { useToast } from "./toast";
import { Avatar, ErrorState, Loading } from "./ui";

const RichEditor = lazy(() => import("./RichEditor"));

export function threads(comments: Comment[]): { root: Comment; replies: Comment[] }[] {
  const ids = new Set(comments.map((c) => c.id));
  const roots = comments.filter((c) => !c.parent_id || !ids.has(c.parent_id));
  // Replies attach to their top-level ancestor (one level of nesting on screen).
  const parentOf = new Map(comments.map((c) => [c.id, c.parent_id]));
  const topOf = (c: Comment): string => {
    let cur: string | null | undefined = c.id;
    for (let i = 0; i < 50; i++) {
      const p: string | null | undefined = parentOf.get(cur!);
      if (!p || !ids.has(p)) return cur!;
      cur = p;
    }
    return cur!;
  };
  return roots.map((root) => ({ root, replies: comments.filter((c) => c.id !== root.id && topOf(c) === root.id) }));
}

export function Comments({ task, canComment }: { task: Task; canComment: boolean }) {
  const qc = useQueryClient();
  const me = useMe();
  const { members, nameOf } = useMemberLookup();
  const { toastError } = useToast();
  const [replyTo, setReplyTo] = useState<string | null>(null);
  const list = useQuery({ queryKey: keys.comments(task.id), queryFn: ({ signal }) => fetchAll<Comment>(`/tasks/${task.id}/comments`, {}, 20, signal) });

  const post = useMutation({
    mutationFn: (v: { body: string; parent_id?: string }) => api<Comment>(`/tasks/${task.id}/comments`, { method: "POST", body: v }),
    onSuccess: (c) => {
      qc.setQueryData<Comment[]>(keys.comments(task.id), (xs) => [...(xs ?? []), c]);
      void qc.invalidateQueries({ queryKey: keys.projectActivity(task.project_id) });
      void qc.invalidateQueries({ queryKey: keys.taskActivity(task.id) });
    },
    onError: (e) => toastError(e, "post the comment"),
  });
  const remove = useMutation({
    mutationFn: (c: Comment) => api(`/comments/${c.id}`, { method: "DELETE", version: c.version }),
    onMutate: (c) => {
      const prev = qc.getQueryData<Comment[]>(keys.comments(task.id));
      qc.setQueryData<Comment[]>(keys.comments(task.id), (xs) => xs?.filter((x) => x.id !== c.id));
      return { prev };
    },
    onError: (e, _c, ctx) => {
      qc.setQueryData(keys.comments(task.id), ctx?.prev);
      toastError(e, "delete the comment");
    },
  });

  async function send(body: string, parent?: string): Promise<boolean> {
    if (!body.trim()) return false;
    try {
      await post.mutateAsync({ body, parent_id: parent });
      if (parent) setReplyTo(null);
      return true;
    } catch {
      return false;
    }
  }

  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorState error={list.error} retry={() => list.refetch()} />;
  const th = threads(list.data);

  const one = (c: Comment, isReply: boolean) => (
    <div className="comment" key={c.id} data-comment-id={c.id}>
      <Avatar name={nameOf(c.author_id)} />
      <div style={{ minWidth: 0 }}>
        <div className="comment-meta">
          <strong>{nameOf(c.author_id)}</strong>
          <time dateTime={c.created_at} title={formatDateTime(c.created_at)}>
            {timeAgo(c.created_at)}
          </time>
          {c.edited && <span>(edited)</span>}
        </div>
        <div className="prose" dangerouslySetInnerHTML={{ __html: fixMentionHtml(c.body_html) }} />
        <div className="form-actions" style={{ marginTop: 0 }}>
          {canComment && !isReply && (
            <button type="button" className="btn-small btn-ghost" onClick={() => setReplyTo(replyTo === c.id ? null : c.id)} aria-expanded={replyTo === c.id}>
              Reply
            </button>
          )}
          {me.data?.id === c.author_id && (
            <button type="button" className="btn-small btn-ghost" onClick={() => remove.mutate(c)}>
              Delete
            </button>
          )}
        </div>
      </div>
    </div>
  );

  return (
    <div>
      {th.length === 0 && <p className="muted">No comments yet.</p>}
      {th.map(({ root, replies }) => (
        <div key={root.id}>
          {one(root, false)}
          {(replies.length > 0 || replyTo === root.id) && (
            <div style={{ marginLeft: "2.2rem" }} className="replies" role="group" aria-label={`Replies to ${nameOf(root.author_id)}`}>
              {replies.map((r) => one(r, true))}
              {replyTo === root.id && (
                <Suspense fallback={<Loading />}>
                  <RichEditor label={`Reply to ${nameOf(root.author_id)}`} placeholder="Write a reply…" members={members} submitLabel="Reply" autoFocus clearOnSubmit pending={post.isPending} onSubmit={(md) => send(md, root.id)} onCancel={() => setReplyTo(null)} />
                </Suspense>
              )}
            </div>
          )}
        </div>
      ))}
      {canComment && (
        <div style={{ marginTop: "0.75rem" }}>
          <Suspense fallback={<textarea aria-label="Comment" disabled placeholder="Loading the editor…" />}>
            <RichEditor label="Comment" placeholder="Write a comment… Type @ to mention someone." members={members} submitLabel="Comment" clearOnSubmit pending={post.isPending} onSubmit={(md) => send(md)} />
          </Suspense>
        </div>
      )}
    </div>
  );
}
