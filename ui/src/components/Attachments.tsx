// A task's files and recorded messages (lazy: only the task screen loads it).
// Upload by the file picker or by dropping files on the section, each with a
// progress bar and a cancel; thumbnails for images, players for recordings;
// download; delete for the uploader and the project's Lead.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useCallback, useEffect, useRef, useState, type DragEvent } from "react";
import { api, API_BASE, fetchAll } from "../api/client";
import { keys, useMe, useMemberLookup } from "../api/queries";
import type { Attachment, AttachmentKind, Project, Task } from "../api/types";
import { formatDateTime } from "../lib/format";
import { formatDuration } from "../lib/recorder";
import { describeUploadError, formatBytes, isAbort, percent, uploadAttachment, type UploadProgress } from "../lib/upload";
import { useToast } from "./toast";
import { EmptyState, ErrorState, Loading, Modal } from "./ui";

const Recorder = lazy(() => import("./Recorder"));

interface PendingUpload {
  id: number;
  name: string;
  size: number;
  progress?: UploadProgress;
  error?: string;
  controller: AbortController;
}

let nextUploadId = 1;

export const contentUrl = (a: Pick<Attachment, "id">) => `${API_BASE}/attachments/${encodeURIComponent(a.id)}/content`;
export const thumbnailUrl = (a: Pick<Attachment, "id">) => `${API_BASE}/attachments/${encodeURIComponent(a.id)}/thumbnail`;

/** "PNG image", "PDF", "WebM audio"… from a sniffed content type. */
export function describeType(ct: string): string {
  const base = ct.split(";")[0].trim().toLowerCase();
  const [top, sub = ""] = base.split("/");
  const named: Record<string, string> = {
    "application/pdf": "PDF",
    "application/zip": "ZIP archive",
    "application/json": "JSON",
    "application/octet-stream": "File",
    "text/plain": "Text",
    "text/csv": "CSV",
    "text/html": "HTML",
  };
  if (named[base]) return named[base];
  const short = sub.replace(/^x-/, "").replace(/\+xml$/, "").toUpperCase();
  if (top === "image") return `${short} image`;
  if (top === "audio") return `${short} audio`;
  if (top === "video") return `${short} video`;
  if (top === "text") return `${short || "Text"} text`;
  return short || "File";
}

/** Tasks' uploads, progress and errors: one hook, used by the drop zone, the picker and the recorder. */
export function useTaskUploads(task: Task) {
  const qc = useQueryClient();
  const [uploads, setUploads] = useState<PendingUpload[]>([]);
  const patch = useCallback((id: number, p: Partial<PendingUpload>) => setUploads((xs) => xs.map((u) => (u.id === id ? { ...u, ...p } : u))), []);
  const onUploaded = useCallback(
    (a: Attachment) => {
      qc.setQueryData<Attachment[]>(keys.attachments(task.id), (xs) => (xs ? [...xs.filter((x) => x.id !== a.id), a] : xs));
      void qc.invalidateQueries({ queryKey: keys.attachments(task.id) });
      void qc.invalidateQueries({ queryKey: keys.taskActivity(task.id) });
      void qc.invalidateQueries({ queryKey: keys.plan });
    },
    [qc, task.id],
  );
  const start = useCallback(
    (files: File[]) => {
      for (const file of files) {
        const u: PendingUpload = { id: nextUploadId++, name: file.name, size: file.size, controller: new AbortController() };
        setUploads((xs) => [...xs, u]);
        uploadAttachment(`/tasks/${encodeURIComponent(task.id)}/attachments`, file, { signal: u.controller.signal, onProgress: (p) => patch(u.id, { progress: p }) }).then(
          (a) => {
            setUploads((xs) => xs.filter((x) => x.id !== u.id));
            onUploaded(a);
          },
          (e) => {
            if (isAbort(e)) setUploads((xs) => xs.filter((x) => x.id !== u.id));
            else patch(u.id, { error: describeUploadError(e, file.name) });
          },
        );
      }
    },
    [task.id, patch, onUploaded],
  );
  const cancel = (id: number) => uploads.find((u) => u.id === id)?.controller.abort();
  const dismiss = (id: number) => setUploads((xs) => xs.filter((u) => u.id !== id));
  // Leaving the task cancels what is still uploading (nothing half-written is left: the server discards it).
  const ref = useRef(uploads);
  ref.current = uploads;
  useEffect(() => () => ref.current.forEach((u) => u.controller.abort()), []);
  return { uploads, start, cancel, dismiss, onUploaded };
}

export default function Attachments({ task, project, canUpload }: { task: Task; project: Project; canUpload: boolean }) {
  const qc = useQueryClient();
  const me = useMe();
  const { nameOf } = useMemberLookup();
  const { toast, toastError } = useToast();
  const list = useQuery({
    queryKey: keys.attachments(task.id),
    queryFn: ({ signal }) => fetchAll<Attachment>(`/tasks/${encodeURIComponent(task.id)}/attachments`, {}, 20, signal),
  });
  const { uploads, start, cancel, dismiss, onUploaded } = useTaskUploads(task);
  const [dragging, setDragging] = useState(false);
  const [deleting, setDeleting] = useState<Attachment | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const depth = useRef(0);

  const del = useMutation({
    mutationFn: (a: Attachment) => api(`/attachments/${encodeURIComponent(a.id)}`, { method: "DELETE" }),
    onMutate: async (a) => {
      await qc.cancelQueries({ queryKey: keys.attachments(task.id) });
      const prev = qc.getQueryData<Attachment[]>(keys.attachments(task.id));
      qc.setQueryData<Attachment[]>(keys.attachments(task.id), (xs) => xs?.filter((x) => x.id !== a.id));
      return { prev };
    },
    onError: (e, _a, ctx) => {
      qc.setQueryData(keys.attachments(task.id), ctx?.prev);
      toastError(e, "delete the attachment");
    },
    onSuccess: (_r, a) => {
      toast({ title: `“${a.name}” deleted`, variant: "success" });
      void qc.invalidateQueries({ queryKey: keys.taskActivity(task.id) });
      void qc.invalidateQueries({ queryKey: keys.plan });
    },
  });

  const canDelete = (a: Attachment) => a.uploaded_by === me.data?.id || project.role === "lead";
  const hasFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes("Files");

  const dropProps = canUpload
    ? {
        onDragEnter: (e: DragEvent) => {
          if (!hasFiles(e)) return;
          e.preventDefault();
          depth.current++;
          setDragging(true);
        },
        onDragOver: (e: DragEvent) => {
          if (!hasFiles(e)) return;
          e.preventDefault();
          e.dataTransfer.dropEffect = "copy";
        },
        onDragLeave: (e: DragEvent) => {
          if (!hasFiles(e)) return;
          depth.current = Math.max(0, depth.current - 1);
          if (depth.current === 0) setDragging(false);
        },
        onDrop: (e: DragEvent) => {
          e.preventDefault();
          depth.current = 0;
          setDragging(false);
          const files = Array.from(e.dataTransfer?.files ?? []);
          if (files.length) start(files);
        },
      }
    : {};

  const items = list.data ?? [];
  return (
    <section aria-labelledby="attachments-h" className={`attachments${dragging ? " dragging" : ""}`} data-testid="attachments" {...dropProps}>
      <h2 id="attachments-h">
        Attachments {items.length > 0 && <span className="muted small">({items.length})</span>}
      </h2>
      {canUpload && (
        <div className="dropzone" data-testid="dropzone">
          <p className="small muted" id="dropzone-hint">
            {dragging ? "Drop the files to attach them." : "Drop files here, or"}
          </p>
          <div className="row-actions">
            <button type="button" className="btn-small" onClick={() => inputRef.current?.click()} aria-describedby="dropzone-hint">
              Choose files…
            </button>
            <Suspense fallback={null}>
              <Recorder task={task} onUploaded={onUploaded} />
            </Suspense>
          </div>
          <input
            ref={inputRef}
            type="file"
            multiple
            hidden
            data-testid="file-input"
            aria-label="Files to attach"
            onChange={(e) => {
              const files = Array.from(e.currentTarget.files ?? []);
              e.currentTarget.value = "";
              if (files.length) start(files);
            }}
          />
        </div>
      )}
      {uploads.length > 0 && (
        <ul className="upload-list" aria-label="Uploads">
          {uploads.map((u) => {
            const pct = percent(u.progress);
            return (
              <li key={u.id} className={u.error ? "upload upload-failed" : "upload"} data-upload-name={u.name}>
                <span className="upload-name">{u.name}</span>
                {u.error ? (
                  <>
                    <span className="field-error" role="alert">
                      {u.error}
                    </span>
                    <button type="button" className="btn-small" onClick={() => dismiss(u.id)} aria-label={`Dismiss the error about ${u.name}`}>
                      Dismiss
                    </button>
                  </>
                ) : (
                  <>
                    <progress max={100} value={pct} aria-label={`Uploading ${u.name}`} />
                    <span className="small muted" aria-hidden="true">
                      {pct}% of {formatBytes(u.size)}
                    </span>
                    <button type="button" className="btn-small" onClick={() => cancel(u.id)} aria-label={`Cancel uploading ${u.name}`}>
                      Cancel
                    </button>
                  </>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {list.isPending ? (
        <Loading label="Loading attachments…" />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : items.length === 0 ? (
        <EmptyState title="No attachments yet">{canUpload && <p className="small muted">Files and recorded messages you add show here.</p>}</EmptyState>
      ) : (
        <ul className="attachment-list" aria-label="Attachments">
          {items.map((a) => (
            <AttachmentItem key={a.id} a={a} uploader={nameOf(a.uploaded_by)} canDelete={canDelete(a)} onDelete={() => setDeleting(a)} />
          ))}
        </ul>
      )}
      <Modal open={!!deleting} onOpenChange={(o) => !o && setDeleting(null)} title={`Delete “${deleting?.name ?? ""}”?`} description="The file is removed for good; this cannot be undone.">
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              if (deleting) del.mutate(deleting);
              setDeleting(null);
            }}
          >
            Delete
          </button>
          <button type="button" onClick={() => setDeleting(null)}>
            Cancel
          </button>
        </div>
      </Modal>
    </section>
  );
}

function kindLabel(kind: AttachmentKind): string {
  return kind === "audio_message" ? "Voice message" : kind === "video_message" ? "Video message" : "";
}

function AttachmentItem({ a, uploader, canDelete, onDelete }: { a: Attachment; uploader: string; canDelete: boolean; onDelete: () => void }) {
  const url = contentUrl(a);
  const message = a.kind !== "file";
  const label = message ? `${kindLabel(a.kind)} from ${uploader}, ${formatDuration(a.duration_ms)}` : a.name;
  const isVideo = a.content_type.startsWith("video/");
  const isAudio = a.content_type.startsWith("audio/");
  return (
    <li className="attachment" data-attachment-name={a.name} data-kind={a.kind}>
      {a.has_thumbnail ? (
        <img className="attachment-thumb" src={thumbnailUrl(a)} alt="" loading="lazy" />
      ) : (
        <span className="attachment-icon" aria-hidden="true">
          {isAudio ? "♪" : isVideo ? "▶" : "📄"}
        </span>
      )}
      <div className="attachment-body">
        <div className="attachment-name">
          {message && <span className="badge">{kindLabel(a.kind)}</span>}{" "}
          <a href={url} download={a.name} data-testid="attachment-download">
            {a.name}
          </a>
        </div>
        <div className="small muted">
          {formatBytes(a.size)} · {describeType(a.content_type)}
          {message && a.duration_ms ? ` · ${formatDuration(a.duration_ms)}` : ""} · {uploader} · <time dateTime={a.created_at}>{formatDateTime(a.created_at)}</time>
          {a.comment_id ? " · on a comment" : ""}
        </div>
        {message && isVideo && <video controls preload="metadata" src={url} aria-label={label} className="attachment-player" />}
        {message && isAudio && <audio controls preload="metadata" src={url} aria-label={label} className="attachment-player" />}
      </div>
      <div className="row-actions">
        <a className="btn btn-small" href={url} download={a.name} aria-label={`Download ${a.name}`}>
          Download
        </a>
        {canDelete && (
          <button type="button" className="btn-small btn-danger" onClick={onDelete} aria-label={`Delete ${a.name}`}>
            Delete
          </button>
        )}
      </div>
    </li>
  );
}
