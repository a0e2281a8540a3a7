import { QueryClient } from "@tanstack/react-query";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { live } from "./live";

class FakeWS {
  static OPEN = 1;
  static all: FakeWS[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: ((e: { code: number }) => void) | null = null;
  constructor(public url: string) {
    FakeWS.all.push(this);
  }
  send(s: string) {
    this.sent.push(JSON.parse(s));
  }
  close() {}
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  recv(m: object) {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
}

describe("live client", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWS.all = [];
    vi.stubGlobal("WebSocket", FakeWS);
  });
  afterEach(() => {
    live.stop();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("subscribes to the inbox and the screens' topics, invalidates on others' events, resumes with since", async () => {
    const qc = new QueryClient();
    const spy = vi.spyOn(qc, "invalidateQueries");
    live.start(qc, "me");
    const release = live.use("project:p1");
    const ws = FakeWS.all[0];
    expect(ws.url).toMatch(/\/api\/v1\/ws$/);
    ws.open();
    expect(ws.sent).toContainEqual({ type: "subscribe", topics: ["user:me", "project:p1"] });
    expect(ws.sent).toContainEqual({ type: "presence", topic: "project:p1", state: "viewing" });

    ws.recv({ type: "event", seq: 5, actor: "me", changes: [{ kind: "task.updated", project_id: "p1", task_id: "t1" }] });
    await vi.advanceTimersByTimeAsync(60);
    expect(spy).not.toHaveBeenCalled();

    ws.recv({ type: "event", seq: 7, actor: "bob", changes: [{ kind: "task.updated", project_id: "p1", task_id: "t1" }] });
    await vi.advanceTimersByTimeAsync(60);
    const keys = spy.mock.calls.map((c) => JSON.stringify(c[0]?.queryKey));
    expect(keys).toContain(JSON.stringify(["board", "p1"]));
    expect(keys).toContain(JSON.stringify(["task"]));

    ws.recv({ type: "presence", topic: "project:p1", viewers: ["bob", "me"] });
    expect(live.viewers("project:p1")).toEqual(["bob"]);

    ws.onclose?.({ code: 1006 });
    await vi.advanceTimersByTimeAsync(1100);
    const ws2 = FakeWS.all[1];
    ws2.open();
    expect(ws2.sent[0]).toEqual({ type: "subscribe", topics: ["user:me", "project:p1"], since: 7 });

    release();
    expect(ws2.sent).toContainEqual({ type: "presence", topic: "project:p1", state: "left" });
    expect(ws2.sent.at(-1)).toEqual({ type: "subscribe", topics: ["user:me"] });
  });

  it("fetches a screen again once the server confirms its topic, so a change made before the subscription is not missed", async () => {
    const qc = new QueryClient();
    const spy = vi.spyOn(qc, "invalidateQueries");
    live.start(qc, "me");
    live.use("workspace");
    const ws = FakeWS.all[0];
    ws.open();
    // The server names the user's own topic by ID.
    ws.recv({ type: "subscribed", topics: ["user:u1", "workspace"], seq: 3 });
    await vi.advanceTimersByTimeAsync(60);
    let keys = spy.mock.calls.map((c) => JSON.stringify(c[0]?.queryKey));
    // The inbox count and My tasks too: an assignment may have landed before the subscription.
    expect(keys.sort()).toEqual([["activity", "workspace"], ["my-tasks"], ["notifications"]].map((k) => JSON.stringify(k)).sort());

    // Another screen's topic is added: only its screens are fetched again.
    spy.mockClear();
    live.use("project:p2");
    ws.recv({ type: "subscribed", topics: ["user:u1", "workspace", "project:p2"], seq: 3 });
    await vi.advanceTimersByTimeAsync(60);
    keys = spy.mock.calls.map((c) => JSON.stringify(c[0]?.queryKey));
    expect(keys).toContain(JSON.stringify(["board", "p2"]));
    expect(keys).toContain(JSON.stringify(["activity", "project", "p2"]));
    expect(keys).not.toContain(JSON.stringify(["task"]));
    expect(keys).not.toContain(JSON.stringify(["notifications"]));
  });

  it("does not reconnect once the session ended (4401)", async () => {
    live.start(new QueryClient(), "me");
    const ws = FakeWS.all[0];
    ws.open();
    ws.onclose?.({ code: 4401 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWS.all.length).toBe(1);
  });
});
