// A task's comment thread: top-level comments with their replies, a composer
// with @mentions, replying and deleting one's own comments. With attachments
// on, a comment shows its files inline (thumbnails, players, download) and
// its author can add files or a recorded message: in the composer (sent
// once the comment is posted) or later, on the comment itself. The pieces
// are the task attachments' (Attachments.tsx, Recorder.tsx).

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useMemo, useRef, useState, type ReactNode } from "react";
import { api, fetchAll } from "../api/client";
import { keys, useMe, useMemberLookup } from "../api/queries";
import type { Attachment, Comment, Project, Task } from "../api/types";
import { enabled } from "../features";
import { formatDateTime, timeAgo } from "../lib/format";
import { fixMentionHtml } from "../lib/html";
import { formatDuration } from "../lib/recorder";
import { formatBytes } from "../lib/upload";
import { AttachmentList, UploadList, useTaskAttachments, useUploads, type UploadItem } from "./Attachments";
import { useToast } from "./toast";
import { Avatar, ErrorState, Loading } from "./ui";

const RichEditor = lazy(() => import("./RichEditor"));
const Recorder = lazy(() => import("./Recorder"));

const commentPath = (id: string) => `/comments/${encodeURIComponent(id)}/attachments`;

/** The text of a comment that carries only files (the API wants a body). */
export function filesOnlyBody(items: Pick<UploadItem, "kind">[]): string {
  if (items.length === 1 && items[0].kind === "audio_message") return "Voice message";
  if (items.length === 1 && items[0].kind === "video_message") return "Video message";
  return items.length === 1 ? "1 attachment" : `${items.length} attachments`;
}

/** "Attach files…" and the recorder's buttons: the caller decides whether they upload at once (an existing comment) or wait for the comment (the composer). */
function FilePickers({ label, onFiles, recorder }: { label: string; onFiles: (files: File[]) => void; recorder: ReactNode }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <div className="row-actions comment-files-actions">
      <button type="button" className="btn-small" onClick={() => input.current?.click()}>
        Attach files…
      </button>
      <Suspense fallback={null}>{recorder}</Suspense>
      <input
        ref={input}
        type="file"
        multiple
        hidden
        data-testid="comment-file-input"
        aria-label={label}
        onChange={(e) => {
          const files = Array.from(e.currentTarget.files ?? []);
          e.currentTarget.value = "";
          if (files.length) onFiles(files);
        }}
      />
    </div>
  );
}

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

export function Comments({ task, project, canComment }: { task: Task; project?: Project; canComment: boolean }) {
  const qc = useQueryClient();
  const me = useMe();
  const { members, nameOf } = useMemberLookup();
  const { toastError } = useToast();
  const [replyTo, setReplyTo] = useState<string | null>(null);
  const list = useQuery({ queryKey: keys.comments(task.id), queryFn: ({ signal }) => fetchAll<Comment>(`/tasks/${task.id}/comments`, {}, 20, signal) });
  // Files: the task's list carries its comments' (comment_id); uploads land in it.
  const files = enabled("attachments") && !!project;
  const attachments = useTaskAttachments(task, files);
  const byComment = useMemo(() => {
    const m = new Map<string, Attachment[]>();
    for (const a of attachments.data ?? []) if (a.comment_id) m.set(a.comment_id, [...(m.get(a.comment_id) ?? []), a]);
    return m;
  }, [attachments.data]);
  const { uploads, start, cancel, dismiss, onUploaded } = useUploads(task);
  const [staged, setStaged] = useState<(UploadItem & { key: number })[]>([]);
  const stagedKey = useRef(1);
  const stage = (items: UploadItem[]) => setStaged((xs) => [...xs, ...items.map((it) => ({ ...it, key: stagedKey.current++ }))]);
  const [attachTo, setAttachTo] = useState<string | null>(null);

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
    const withFiles = !parent && files ? staged : [];
    if (!body.trim() && withFiles.length === 0) return false;
    try {
      const c = await post.mutateAsync({ body: body.trim() ? body : filesOnlyBody(withFiles), parent_id: parent });
      if (parent) setReplyTo(null);
      if (withFiles.length) {
        setStaged([]);
        start(withFiles, commentPath(c.id));
      }
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
        {files && project && byComment.has(c.id) && (
          <AttachmentList task={task} project={project} items={byComment.get(c.id)!} label={`Files on ${nameOf(c.author_id)}'s comment`} showOrigin={false} />
        )}
        {files && attachTo === c.id && (
          <div className="comment-attach" role="group" aria-label="Add files to your comment">
            <FilePickers
              label="Files to add to your comment"
              onFiles={(fs) => start(fs, commentPath(c.id))}
              recorder={<Recorder uploadPath={commentPath(c.id)} onUploaded={onUploaded} labels={{ voice: "Add a voice message", video: "Add a video message", group: "for your comment" }} />}
            />
            <UploadList uploads={uploads} cancel={cancel} dismiss={dismiss} label="Comment uploads" />
          </div>
        )}
        <div className="form-actions" style={{ marginTop: 0 }}>
          {canComment && !isReply && (
            <button type="button" className="btn-small btn-ghost" onClick={() => setReplyTo(replyTo === c.id ? null : c.id)} aria-expanded={replyTo === c.id}>
              Reply
            </button>
          )}
          {files && canComment && me.data?.id === c.author_id && (
            <button type="button" className="btn-small btn-ghost" onClick={() => setAttachTo(attachTo === c.id ? null : c.id)} aria-expanded={attachTo === c.id}>
              {attachTo === c.id ? "Done adding files" : "Add files"}
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
            <RichEditor
              label="Comment"
              placeholder="Write a comment… Type @ to mention someone."
              members={members}
              submitLabel="Comment"
              clearOnSubmit
              allowEmpty={staged.length > 0}
              pending={post.isPending}
              onSubmit={(md) => send(md)}
            >
              {files && (
                <div className="comment-files" role="group" aria-label="Files for this comment">
                  <FilePickers
                    label="Files to attach to the comment"
                    onFiles={(fs) => stage(fs.map((f) => ({ file: f, name: f.name })))}
                    recorder={<Recorder onRecorded={(r) => stage([r])} labels={{ voice: "Add a voice message", video: "Add a video message", add: "Add to the comment", group: "for the comment" }} />}
                  />
                  {staged.length > 0 && (
                    <ul className="staged-list" aria-label="To send with the comment">
                      {staged.map((it) => (
                        <li key={it.key} data-staged-name={it.name}>
                          <span className="badge">{it.kind === "audio_message" ? "Voice message" : it.kind === "video_message" ? "Video message" : "File"}</span> {it.name}{" "}
                          <span className="small muted">
                            {formatBytes(it.file.size)}
                            {it.durationMs ? ` · ${formatDuration(it.durationMs)}` : ""}
                          </span>{" "}
                          <button type="button" className="btn-small btn-ghost" onClick={() => setStaged((xs) => xs.filter((x) => x.key !== it.key))} aria-label={`Remove ${it.name}`}>
                            Remove
                          </button>
                        </li>
                      ))}
                    </ul>
                  )}
                </div>
              )}
            </RichEditor>
          </Suspense>
        </div>
      )}
      {files && !attachTo && <UploadList uploads={uploads} cancel={cancel} dismiss={dismiss} label="Comment uploads" />}
    </div>
  );
}
