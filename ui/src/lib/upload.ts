// Uploads with progress and cancel. fetch() reports no upload progress, so
// attachments go through XMLHttpRequest: multipart/form-data whose fields
// (name, kind, duration_ms) come before the part named file, as the API reads
// them (docs/ATTACHMENTS.md). The same cookie session and CSRF header as every
// other write; a 401 invalid_token refreshes the session once and sends again.

import { API_BASE, ApiError, readCookie, refreshSession, type Problem } from "../api/client";
import type { Attachment, AttachmentKind } from "../api/types";

export interface UploadProgress {
  loaded: number;
  total: number;
}

export interface UploadOptions {
  name?: string;
  kind?: AttachmentKind;
  durationMs?: number;
  onProgress?: (p: UploadProgress) => void;
  signal?: AbortSignal;
  /** For tests: the XMLHttpRequest constructor. */
  xhr?: () => XMLHttpRequest;
}

/** The multipart body: the fields first, then the file (the API stops reading fields at "file"). */
export function uploadForm(file: Blob, opts: Pick<UploadOptions, "name" | "kind" | "durationMs"> = {}): FormData {
  const fd = new FormData();
  const name = opts.name ?? (file instanceof File ? file.name : "");
  if (name) fd.append("name", name);
  if (opts.kind && opts.kind !== "file") fd.append("kind", opts.kind);
  if (opts.durationMs !== undefined) fd.append("duration_ms", String(Math.max(1, Math.round(opts.durationMs))));
  fd.append("file", file, name || "attachment");
  return fd;
}

function abortError(): DOMException {
  return new DOMException("The upload was cancelled.", "AbortError");
}

export function isAbort(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === "AbortError";
}

function problemOf(xhr: XMLHttpRequest): Problem {
  const text = xhr.responseText ?? "";
  try {
    const p = JSON.parse(text) as Problem;
    if (p && typeof p === "object") return { ...p, status: p.status || xhr.status, code: p.code || "error" };
  } catch {
    /* not JSON */
  }
  return { status: xhr.status, code: xhr.status === 413 ? "file_too_large" : xhr.status >= 500 ? "internal_error" : "error", detail: text || xhr.statusText || `HTTP ${xhr.status}` };
}

function sendOnce(url: string, body: FormData, opts: UploadOptions): Promise<{ status: number; attachment?: Attachment; problem?: Problem }> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortError());
    const xhr = opts.xhr ? opts.xhr() : new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json, application/problem+json");
    const csrf = readCookie("tf_csrf");
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    const onAbort = () => xhr.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => opts.signal?.removeEventListener("abort", onAbort);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) opts.onProgress?.({ loaded: e.loaded, total: e.total });
    };
    xhr.onload = () => {
      done();
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve({ status: xhr.status, attachment: JSON.parse(xhr.responseText) as Attachment });
        } catch {
          reject(new ApiError({ status: xhr.status, code: "error", detail: "The server's answer could not be read." }));
        }
        return;
      }
      resolve({ status: xhr.status, problem: problemOf(xhr) });
    };
    xhr.onerror = () => {
      done();
      reject(new ApiError({ status: 0, code: "network", detail: "The upload did not reach the server. Check your connection and try again." }));
    };
    xhr.onabort = () => {
      done();
      reject(abortError());
    };
    xhr.send(body);
  });
}

/** POSTs a file to an attachments collection ("/tasks/WEB-1/attachments"); resolves with the new attachment. */
export async function uploadAttachment(path: string, file: Blob, opts: UploadOptions = {}): Promise<Attachment> {
  const url = API_BASE + path;
  const csrfAtRequest = readCookie("tf_csrf");
  let res = await sendOnce(url, uploadForm(file, opts), opts);
  if (res.status === 401 && (res.problem?.code === "invalid_token" || res.problem?.code === "unauthenticated")) {
    if (await refreshSession(fetch, csrfAtRequest)) res = await sendOnce(url, uploadForm(file, opts), opts);
  }
  if (res.attachment) return res.attachment;
  throw new ApiError(res.problem ?? { status: res.status, code: "error" });
}

/** "0 B", "812 B", "1.4 kB", "23 MB", "1.2 GB" (decimal units, as file managers show). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, "")} ${units[i]}`;
}

/** Whole percent of an upload, 0–100 (0 while the size is unknown). */
export function percent(p: UploadProgress | undefined): number {
  if (!p || p.total <= 0) return 0;
  return Math.min(100, Math.max(0, Math.floor((p.loaded / p.total) * 100)));
}

/** What went wrong with an upload, for people: the size refusals name their limits. */
export function describeUploadError(e: unknown, fileName?: string): string {
  const what = fileName ? `“${fileName}”` : "The file";
  if (!(e instanceof ApiError)) return `${what} could not be uploaded. Please try again.`;
  const d = e.details ?? {};
  switch (e.code) {
    case "file_too_large": {
      const max = Number(d.max_bytes);
      return `${what} is too large${Number.isFinite(max) && max > 0 ? `: files may be at most ${formatBytes(max)}` : ""}.`;
    }
    case "storage_quota_exceeded": {
      const max = Number(d.max);
      const used = Number(d.used);
      const plan = d.plan ? `the ${String(d.plan)} plan's` : "the workspace's";
      const limits =
        Number.isFinite(max) && max > 0 ? ` (${Number.isFinite(used) ? `${formatBytes(used)} of ${formatBytes(max)} used` : `${formatBytes(max)}`})` : "";
      return `${what} does not fit in ${plan} storage${limits}. Delete files you no longer need, or ask for a bigger plan.`;
    }
    case "empty_file":
      return `${what} is empty.`;
    case "not_a_recording":
      return `The recording could not be used: ${e.message}.`;
    case "upload_interrupted":
      return `The upload of ${what} was interrupted. Please try again.`;
    case "forbidden":
      return `You cannot add files to this task.`;
    default:
      return e.message;
  }
}
