// Live updates over the websocket (GET /api/v1/ws, docs/REALTIME.md).
//
// One connection per page, opened by the signed-in frame (startLive in
// Shell). It always follows `user:me` (the inbox: new items and the unread
// count) and whatever topics the open screens ask for with useLive (the
// board its project, the task screen its task). Screens also say they are
// viewing their topic, and hear who else is (presence).
//
// An event invalidates the TanStack Query caches its changes touch, so a
// board or task updates when someone else changes it. Events caused by this
// same user are skipped: this tab already applied its own writes (and
// invalidating while a drag's optimistic update is in flight would let a
// refetch race it); the user's other tabs catch up on focus. A `resync`
// (missed events) invalidates everything. The connection resumes after the
// largest seq it has seen when it reconnects (backoff 1 s → 30 s).

import type { QueryClient } from "@tanstack/react-query";
import { useEffect, useSyncExternalStore } from "react";
import { api } from "../api/client";
import { enabled } from "../features";

export interface LiveTopic {
  kind: "project" | "task" | "workspace";
  id: string;
}

interface Change {
  kind: string;
  target_kind?: string;
  target_id?: string;
  project_id?: string;
  task_id?: string;
}

interface ServerMsg {
  type: string;
  seq?: number;
  kind?: string;
  actor?: string;
  changes?: Change[];
  notifications?: unknown[];
  unread?: number;
  topic?: string;
  topics?: string[];
  viewers?: string[];
  code?: string;
}

type Listener = () => void;

/** The live connection's state, readable by components through useSyncExternalStore. */
class LiveClient {
  private ws: WebSocket | null = null;
  private qc: QueryClient | null = null;
  private me = "";
  private seq = 0;
  private subscribedOnce = false;
  private following = new Set<string>(); // topics the server confirmed (subscribed)
  private topics = new Map<string, number>(); // topic → screens using it
  private viewing = new Map<string, number>();
  private presence = new Map<string, string[]>();
  private listeners = new Set<Listener>();
  private retry = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  connected = false;
  version = 0;

  start(qc: QueryClient, me: string) {
    if (!this.stopped && this.qc === qc && this.me === me) return;
    this.stop();
    this.qc = qc;
    this.me = me;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
    }
    this.connected = false;
    this.subscribedOnce = false;
    this.following.clear();
    this.seq = 0;
    this.presence.clear();
    this.emit();
  }

  private connect() {
    if (this.stopped || typeof WebSocket === "undefined") return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      return this.reconnectLater();
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retry = 0;
      this.subscribedOnce = false;
      this.following.clear();
      this.connected = true;
      this.sendSubscribe();
      for (const t of this.viewing.keys()) this.send({ type: "presence", topic: t, state: "viewing" });
      this.emit();
    };
    ws.onmessage = (m) => {
      try {
        this.onMessage(JSON.parse(String(m.data)) as ServerMsg);
      } catch {
        /* not for us */
      }
    };
    ws.onclose = (e) => {
      this.ws = null;
      // Refused before it opened: perhaps the access cookie expired while the
      // page was idle. A plain API read renews it (refresh-and-retry) first.
      if (!opened && !this.stopped) {
        this.connected = false;
        void api("/me").then(
          () => this.reconnectLater(),
          () => this.reconnectLater(),
        );
        return;
      }
      this.connected = false;
      this.presence.clear();
      this.emit();
      // 4401: the session ended; the next API call signs the page out.
      if (e.code === 4401) return;
      this.reconnectLater();
    };
  }

  private reconnectLater() {
    if (this.stopped) return;
    const ms = Math.min(30_000, 1000 * 2 ** this.retry++);
    this.timer = setTimeout(() => this.connect(), ms);
  }

  private send(msg: object) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private sendSubscribe() {
    const msg: Record<string, unknown> = { type: "subscribe", topics: ["user:me", ...this.topics.keys()] };
    // since is honoured in a connection's first subscribe only.
    if (this.seq > 0 && !this.subscribedOnce) msg.since = this.seq;
    this.subscribedOnce = true;
    this.send(msg);
  }

  private onMessage(m: ServerMsg) {
    if (typeof m.seq === "number" && m.seq > this.seq) this.seq = m.seq;
    switch (m.type) {
      case "event":
        if (m.notifications?.length || typeof m.unread === "number") this.invalidate(["notifications"]);
        // An inbox item may be an assignment: My tasks follows no topic of its own.
        if (m.notifications?.length) this.invalidate(["my-tasks"]);
        if (m.actor !== this.me) for (const c of m.changes ?? []) this.invalidateFor(c);
        break;
      case "subscribed":
        this.onSubscribed(m.topics ?? []);
        break;
      case "resync":
        void this.qc?.invalidateQueries();
        break;
      case "presence":
        if (m.topic) {
          this.presence.set(m.topic, m.viewers ?? []);
          this.emit();
        }
        break;
    }
  }

  /**
   * The server follows topics from here on. A screen fetched its data when it
   * opened, before its subscription took effect: a change made in between
   * reached no event, so the screens of each newly followed topic are
   * fetched once more (events cover everything after).
   */
  private onSubscribed(topics: string[]) {
    const fresh = topics.filter((t) => !this.following.has(t));
    this.following = new Set(topics);
    for (const t of fresh) {
      const [kind, id] = t.split(":", 2);
      if (kind === "project" && id) this.invalidateFor({ kind: "", project_id: id });
      else if (kind === "task" && id) this.invalidateFor({ kind: "", task_id: id });
      else if (kind === "workspace") this.invalidate(["activity", "workspace"]);
      // The inbox: an assignment or comment may have landed between the
      // page's first fetch of the unread count and this subscription.
      else if (kind === "user") {
        this.invalidate(["notifications"]);
        this.invalidate(["my-tasks"]);
      }
    }
  }

  /** Which cached screens a change touches. Invalidation refetches the ones on screen. */
  private invalidateFor(c: Change) {
    if (c.project_id) {
      this.invalidate(["board", c.project_id]);
      this.invalidate(["tasks", c.project_id]);
      this.invalidate(["activity", "project", c.project_id]);
      if (c.kind.startsWith("project")) {
        this.invalidate(["project", c.project_id]);
        this.invalidate(["projects"]);
      }
    }
    if (c.task_id || c.kind.startsWith("task") || c.kind.startsWith("comment")) {
      // Task screens are cached by the key or ID in their URL: refresh them all.
      this.invalidate(["task"]);
      this.invalidate(["subtasks"]);
      this.invalidate(["my-tasks"]);
      if (c.task_id) {
        this.invalidate(["comments", c.task_id]);
        this.invalidate(["activity", "task", c.task_id]);
        if (c.kind.startsWith("attachment")) this.invalidate(["attachments", c.task_id]);
      }
    }
    if (c.kind.startsWith("member") || c.kind.startsWith("invitation")) this.invalidate(["members"]);
    if (c.kind.startsWith("workspace")) this.invalidate(["workspace"]);
    this.invalidate(["activity", "workspace"]);
  }

  private invalidate(key: string[]) {
    this.pending.add(JSON.stringify(key));
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      const keys = [...this.pending];
      this.pending.clear();
      for (const k of keys) void this.qc?.invalidateQueries({ queryKey: JSON.parse(k) as string[] });
    }, 50);
  }

  /** A screen follows topic (and says it is viewing it) until the returned function is called. */
  use(topic: string): () => void {
    const n = this.topics.get(topic) ?? 0;
    const presence = /^(project|task):/.test(topic);
    this.topics.set(topic, n + 1);
    if (presence) this.viewing.set(topic, (this.viewing.get(topic) ?? 0) + 1);
    if (n === 0) {
      this.sendSubscribe();
      if (presence) this.send({ type: "presence", topic, state: "viewing" });
    }
    return () => {
      const left = (this.topics.get(topic) ?? 1) - 1;
      const v = (this.viewing.get(topic) ?? 0) - 1;
      if (v <= 0) this.viewing.delete(topic);
      else this.viewing.set(topic, v);
      if (left <= 0) {
        this.topics.delete(topic);
        this.presence.delete(topic);
        if (presence) this.send({ type: "presence", topic, state: "left" });
        this.sendSubscribe();
        this.emit();
      } else this.topics.set(topic, left);
    };
  }

  /** Other people viewing topic (the signed-in user left out). */
  viewers(topic: string): string[] {
    return (this.presence.get(topic) ?? []).filter((u) => u !== this.me);
  }

  subscribe = (fn: Listener) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private emit() {
    this.version++;
    this.listeners.forEach((fn) => fn());
  }
}

export const live = new LiveClient();

/** Opens the page's live connection while the signed-in frame is up. */
export function useLiveConnection(qc: QueryClient, me: string | undefined) {
  useEffect(() => {
    if (!enabled("realtime") || !me) return;
    live.start(qc, me);
    return () => live.stop();
  }, [qc, me]);
}

const noop = () => () => {};

/** Follows a project or task while the calling screen is open; returns who else is viewing it. */
export function useLive(topic: LiveTopic | null): { present: string[] } {
  const name = topic ? (topic.kind === "workspace" ? "workspace" : `${topic.kind}:${topic.id}`) : "";
  const on = enabled("realtime") && !!name;
  useEffect(() => {
    if (!on) return;
    return live.use(name);
  }, [on, name]);
  useSyncExternalStore(on ? live.subscribe : noop, () => live.version);
  return { present: on ? live.viewers(name) : [] };
}
