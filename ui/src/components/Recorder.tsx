// Recording a voice or video message in the browser (getUserMedia +
// MediaRecorder): start, stop, listen back, discard or send. The state
// machine is lib/recorder.ts; this component owns the devices and the
// recorder and feeds it events. A message is an upload with kind
// audio_message or video_message and the measured duration_ms.

import { useCallback, useEffect, useReducer, useRef } from "react";
import type { Attachment, Task } from "../api/types";
import {
  describeMediaError,
  formatDuration,
  initialRecorder,
  MAX_RECORDING_MS,
  messageFileName,
  pickMimeType,
  recorderReducer,
  stateUrl,
  uploadType,
  type MessageKind,
} from "../lib/recorder";
import { describeUploadError, formatBytes, isAbort, uploadAttachment } from "../lib/upload";

export function canRecord(): boolean {
  return typeof window !== "undefined" && typeof window.MediaRecorder !== "undefined" && !!navigator.mediaDevices?.getUserMedia;
}

export default function Recorder({ task, onUploaded }: { task: Task; onUploaded: (a: Attachment) => void }) {
  const [state, dispatch] = useReducer(recorderReducer, initialRecorder);
  const stream = useRef<MediaStream | null>(null);
  const recorder = useRef<MediaRecorder | null>(null);
  const chunks = useRef<Blob[]>([]);
  const sending = useRef<AbortController | null>(null);
  const live = useRef<HTMLVideoElement | null>(null);
  const discardOnStop = useRef(false);

  const releaseDevices = useCallback(() => {
    stream.current?.getTracks().forEach((t) => t.stop());
    stream.current = null;
  }, []);

  // Object URLs of recordings left behind are revoked.
  const url = stateUrl(state);
  useEffect(() => {
    if (!url) return;
    return () => URL.revokeObjectURL(url);
  }, [url]);

  // Leaving the screen stops everything.
  useEffect(
    () => () => {
      discardOnStop.current = true;
      if (recorder.current && recorder.current.state !== "inactive") recorder.current.stop();
      sending.current?.abort();
      stream.current?.getTracks().forEach((t) => t.stop());
    },
    [],
  );

  // The elapsed time, and the automatic stop at the longest length.
  const recording = state.status === "recording";
  useEffect(() => {
    if (!recording) return;
    const t = window.setInterval(() => dispatch({ type: "tick", at: Date.now() }), 250);
    return () => window.clearInterval(t);
  }, [recording]);
  useEffect(() => {
    if (state.status === "recording" && state.elapsedMs >= MAX_RECORDING_MS) stop();
  });

  // The camera's picture while recording video.
  useEffect(() => {
    if (recording && live.current && stream.current) live.current.srcObject = stream.current;
  }, [recording]);

  async function start(kind: MessageKind) {
    dispatch({ type: "start", kind });
    if (!canRecord()) return dispatch({ type: "denied", message: describeMediaError({ name: "Unsupported" }, kind) });
    try {
      const s = await navigator.mediaDevices.getUserMedia(kind === "video_message" ? { audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 } } } : { audio: true });
      stream.current = s;
      const mimeType = pickMimeType(kind, (t) => MediaRecorder.isTypeSupported(t));
      const rec = new MediaRecorder(s, mimeType ? { mimeType } : undefined);
      recorder.current = rec;
      chunks.current = [];
      discardOnStop.current = false;
      rec.ondataavailable = (e) => {
        if (e.data.size > 0) chunks.current.push(e.data);
      };
      rec.onstop = () => {
        releaseDevices();
        if (discardOnStop.current) return;
        const type = uploadType(kind, rec.mimeType || mimeType || (kind === "audio_message" ? "audio/webm" : "video/webm"));
        const blob = new Blob(chunks.current, { type });
        chunks.current = [];
        dispatch({ type: "data", blob, url: URL.createObjectURL(blob), mimeType: type });
      };
      rec.onerror = (e) => {
        releaseDevices();
        dispatch({ type: "denied", message: describeMediaError((e as unknown as { error?: unknown }).error ?? e, kind) });
      };
      rec.start(1000);
      dispatch({ type: "granted", at: Date.now() });
    } catch (e) {
      releaseDevices();
      dispatch({ type: "denied", message: describeMediaError(e, kind) });
    }
  }

  function stop() {
    dispatch({ type: "stop", at: Date.now() });
    if (recorder.current && recorder.current.state !== "inactive") recorder.current.stop();
  }

  function cancelRecording() {
    discardOnStop.current = true;
    if (recorder.current && recorder.current.state !== "inactive") recorder.current.stop();
    releaseDevices();
    dispatch({ type: "cancel" });
  }

  async function send() {
    if (state.status !== "recorded") return;
    const { blob, kind, durationMs, mimeType } = state;
    dispatch({ type: "send" });
    const ctl = new AbortController();
    sending.current = ctl;
    const name = messageFileName(kind, mimeType);
    try {
      const a = await uploadAttachment(`/tasks/${encodeURIComponent(task.id)}/attachments`, new File([blob], name, { type: mimeType }), {
        name,
        kind,
        durationMs,
        signal: ctl.signal,
        onProgress: (p) => dispatch({ type: "progress", loaded: p.loaded, total: p.total }),
      });
      dispatch({ type: "sent" });
      onUploaded(a);
    } catch (e) {
      dispatch({ type: "failed", message: isAbort(e) ? "Sending was cancelled. You can send it again or discard it." : describeUploadError(e, name) });
    } finally {
      sending.current = null;
    }
  }

  const what = (k?: MessageKind) => (k === "video_message" ? "video message" : "voice message");

  if (state.status === "idle" || state.status === "error") {
    return (
      <>
        <button type="button" className="btn-small" onClick={() => void start("audio_message")}>
          Record voice message
        </button>
        <button type="button" className="btn-small" onClick={() => void start("video_message")}>
          Record video message
        </button>
        {state.status === "error" && (
          <div className="form-error recorder-error" role="alert">
            {state.message}{" "}
            <button type="button" className="btn-small" onClick={() => dispatch({ type: "dismiss" })}>
              Dismiss
            </button>
          </div>
        )}
      </>
    );
  }

  return (
    <div className="recorder" role="group" aria-label={`Record a ${what(state.kind)}`} data-testid="recorder" data-state={state.status}>
      {state.status === "requesting" && (
        <p role="status">
          Waiting for the {state.kind === "video_message" ? "camera and microphone" : "microphone"}… Allow access if the browser asks.{" "}
          <button type="button" className="btn-small" onClick={cancelRecording}>
            Cancel
          </button>
        </p>
      )}
      {(state.status === "recording" || state.status === "stopping") && (
        <>
          {state.kind === "video_message" && state.status === "recording" && <video ref={live} className="recorder-live" autoPlay muted playsInline aria-label="Camera preview" />}
          <p>
            <span className="rec-dot" aria-hidden="true" /> Recording a {what(state.kind)}:{" "}
            <span data-testid="elapsed" role="timer" aria-live="off">
              {formatDuration(state.status === "recording" ? state.elapsedMs : state.durationMs)}
            </span>
          </p>
          <p className="visually-hidden" role="status">
            Recording started
          </p>
          <div className="row-actions">
            <button type="button" className="btn-primary btn-small" onClick={stop} disabled={state.status !== "recording"}>
              Stop recording
            </button>
            <button type="button" className="btn-small" onClick={cancelRecording}>
              Cancel
            </button>
          </div>
        </>
      )}
      {(state.status === "recorded" || state.status === "sending") && (
        <>
          <p role="status">
            {state.kind === "video_message" ? "Video" : "Voice"} message recorded: {formatDuration(state.durationMs)} ({formatBytes(state.blob.size)}). Listen to it, then send or discard it.
          </p>
          {state.kind === "video_message" ? (
            <video controls src={state.url} className="attachment-player" aria-label="Your recorded video message" data-testid="recording-preview" />
          ) : (
            <audio controls src={state.url} className="attachment-player" aria-label="Your recorded voice message" data-testid="recording-preview" />
          )}
          {state.status === "recorded" && state.error && (
            <p className="field-error" role="alert">
              {state.error}
            </p>
          )}
          {state.status === "sending" ? (
            <div className="row-actions">
              <progress max={100} value={state.total ? Math.floor((state.loaded / state.total) * 100) : 0} aria-label={`Sending the ${what(state.kind)}`} />
              <button type="button" className="btn-small" onClick={() => sending.current?.abort()}>
                Cancel sending
              </button>
            </div>
          ) : (
            <div className="row-actions">
              <button type="button" className="btn-primary btn-small" onClick={() => void send()}>
                Send {what(state.kind)}
              </button>
              <button type="button" className="btn-small" onClick={() => dispatch({ type: "discard" })}>
                Discard
              </button>
            </div>
          )}
        </>
      )}
    </div>
  );
}
