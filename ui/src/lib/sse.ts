// POST a request whose answer is a server-sent event stream (EventSource can
// only GET), reading events as they arrive. Same session rules as api():
// CSRF header, one refresh-and-retry on an expired access cookie.

import { API_BASE, ApiError, readCookie, refreshSession, type Problem } from "../api/client";

export interface SSEEvent {
  event: string;
  data: string;
}

/** Splits a buffer into complete events; returns them and the unfinished rest. */
export function parseSSE(buffer: string): { events: SSEEvent[]; rest: string } {
  const events: SSEEvent[] = [];
  const norm = buffer.replace(/\r\n?/g, "\n");
  const blocks = norm.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}

export async function postStream(path: string, body: unknown, onEvent: (e: SSEEvent) => void, signal?: AbortSignal, retried = false): Promise<void> {
  const res = await fetch(API_BASE + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream, application/problem+json", "X-CSRF-Token": readCookie("tf_csrf") },
    body: JSON.stringify(body ?? {}),
    signal,
  });
  if (res.status === 401 && !retried) {
    if (await refreshSession()) return postStream(path, body, onEvent, signal, true);
  }
  if (!res.ok || !res.body) {
    let p: Problem = { status: res.status, code: "error" };
    try {
      p = { ...p, ...((await res.json()) as Problem) };
    } catch {
      /* not JSON */
    }
    throw new ApiError(p);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    const { events, rest } = parseSSE(buf);
    buf = rest;
    events.forEach(onEvent);
  }
  const { events } = parseSSE(buf + "\n\n");
  events.forEach(onEvent);
}
