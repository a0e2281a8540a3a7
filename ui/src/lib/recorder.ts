// The voice/video message recorder as a pure state machine (the component in
// components/Recorder.tsx owns the MediaRecorder and the stream and feeds it
// events), plus the helpers that choose a container and name the file.
//
//   idle ──start──▶ requesting ──granted──▶ recording ──stop──▶ stopping ──data──▶ recorded
//                       │denied                 │cancel                               │send
//                       ▼                       ▼                                     ▼
//                     error ◀───────────────── idle ◀──discard── recorded ◀─failed─ sending ──sent──▶ idle

export type MessageKind = "audio_message" | "video_message";

export type RecorderState =
  | { status: "idle" }
  | { status: "requesting"; kind: MessageKind }
  | { status: "recording"; kind: MessageKind; startedAt: number; elapsedMs: number }
  | { status: "stopping"; kind: MessageKind; durationMs: number }
  | { status: "recorded"; kind: MessageKind; durationMs: number; blob: Blob; url: string; mimeType: string; error?: string }
  | { status: "sending"; kind: MessageKind; durationMs: number; blob: Blob; url: string; mimeType: string; loaded: number; total: number }
  | { status: "error"; kind?: MessageKind; message: string };

export type RecorderEvent =
  | { type: "start"; kind: MessageKind }
  | { type: "granted"; at: number }
  | { type: "denied"; message: string }
  | { type: "tick"; at: number }
  | { type: "stop"; at: number }
  | { type: "data"; blob: Blob; url: string; mimeType: string }
  | { type: "cancel" }
  | { type: "discard" }
  | { type: "send" }
  | { type: "progress"; loaded: number; total: number }
  | { type: "sent" }
  | { type: "failed"; message: string }
  | { type: "dismiss" };

export const initialRecorder: RecorderState = { status: "idle" };

/** The longest recording the UI makes (the API allows 4 hours; a message is short). */
export const MAX_RECORDING_MS = 15 * 60 * 1000;

export function recorderReducer(s: RecorderState, e: RecorderEvent): RecorderState {
  switch (e.type) {
    case "start":
      return s.status === "idle" || s.status === "error" ? { status: "requesting", kind: e.kind } : s;
    case "granted":
      return s.status === "requesting" ? { status: "recording", kind: s.kind, startedAt: e.at, elapsedMs: 0 } : s;
    case "denied":
      return s.status === "requesting" || s.status === "recording" || s.status === "stopping" ? { status: "error", kind: s.kind, message: e.message } : s;
    case "tick":
      return s.status === "recording" ? { ...s, elapsedMs: Math.max(0, e.at - s.startedAt) } : s;
    case "stop":
      return s.status === "recording" ? { status: "stopping", kind: s.kind, durationMs: Math.max(1, e.at - s.startedAt) } : s;
    case "data":
      return s.status === "stopping" ? { status: "recorded", kind: s.kind, durationMs: s.durationMs, blob: e.blob, url: e.url, mimeType: e.mimeType } : s;
    case "cancel":
      return s.status === "requesting" || s.status === "recording" || s.status === "stopping" ? { status: "idle" } : s;
    case "discard":
      return s.status === "recorded" ? { status: "idle" } : s;
    case "send":
      return s.status === "recorded" ? { status: "sending", kind: s.kind, durationMs: s.durationMs, blob: s.blob, url: s.url, mimeType: s.mimeType, loaded: 0, total: s.blob.size } : s;
    case "progress":
      return s.status === "sending" ? { ...s, loaded: e.loaded, total: e.total } : s;
    case "sent":
      return s.status === "sending" ? { status: "idle" } : s;
    case "failed":
      return s.status === "sending" ? { status: "recorded", kind: s.kind, durationMs: s.durationMs, blob: s.blob, url: s.url, mimeType: s.mimeType, error: e.message } : s;
    case "dismiss":
      return s.status === "error" ? { status: "idle" } : s;
  }
}

/** The object URL a state holds (to revoke when it is left behind). */
export function stateUrl(s: RecorderState): string | undefined {
  return s.status === "recorded" || s.status === "sending" ? s.url : undefined;
}

const CANDIDATES: Record<MessageKind, string[]> = {
  audio_message: ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"],
  video_message: ["video/webm;codecs=vp9,opus", "video/webm;codecs=vp8,opus", "video/webm", "video/mp4"],
};

/** The first container the browser records in ("" lets the browser choose). */
export function pickMimeType(kind: MessageKind, isTypeSupported: (t: string) => boolean): string {
  for (const t of CANDIDATES[kind]) {
    try {
      if (isTypeSupported(t)) return t;
    } catch {
      /* some browsers throw for unknown types */
    }
  }
  return "";
}

/** The type to declare for the upload: the container with its kind, without codecs ("audio/webm"). */
export function uploadType(kind: MessageKind, mimeType: string): string {
  const base = mimeType.split(";")[0].trim().toLowerCase();
  const container = base.split("/")[1] || "webm";
  return `${kind === "audio_message" ? "audio" : "video"}/${container}`;
}

/** "Voice message 2030-05-01 14.03.webm" */
export function messageFileName(kind: MessageKind, mimeType: string, at = new Date()): string {
  const ext = uploadType(kind, mimeType).split("/")[1] || "webm";
  const pad = (n: number) => String(n).padStart(2, "0");
  const stamp = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}.${pad(at.getMinutes())}`;
  return `${kind === "audio_message" ? "Voice message" : "Video message"} ${stamp}.${ext}`;
}

/** 0 → "0:00", 65_000 → "1:05", 3_725_000 → "1:02:05". */
export function formatDuration(ms: number | null | undefined): string {
  const total = Math.max(0, Math.floor((ms ?? 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

/** A message for a getUserMedia or MediaRecorder failure. */
export function describeMediaError(e: unknown, kind: MessageKind): string {
  const name = (e as { name?: string } | null)?.name ?? "";
  const device = kind === "video_message" ? "camera and microphone" : "microphone";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return `The browser was not allowed to use the ${device}. Allow access in the address bar's site settings, then try again.`;
    case "NotFoundError":
    case "OverconstrainedError":
      return `No ${device} was found.`;
    case "NotReadableError":
    case "AbortError":
      return `The ${device} is in use by another application or could not be started.`;
    case "Unsupported":
      return "This browser cannot record messages.";
    default:
      return `Recording failed${(e as Error)?.message ? `: ${(e as Error).message}` : "."}`;
  }
}
