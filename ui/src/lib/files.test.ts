import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/client";
import { checkAllowlist, checkOrigins, ipv4InNetwork, isIPv6, networkProblem, normalizeOrigin, splitList } from "./netlists";
import { describeMediaError, formatDuration, initialRecorder, messageFileName, pickMimeType, recorderReducer, stateUrl, uploadType, type RecorderState } from "./recorder";
import { describeUploadError, formatBytes, isAbort, percent, uploadAttachment, uploadForm } from "./upload";

/** A scripted XMLHttpRequest: the test decides when progress, load or errors happen. */
class FakeXHR {
  static last: FakeXHR;
  method = "";
  url = "";
  headers: Record<string, string> = {};
  body: unknown;
  status = 0;
  statusText = "";
  responseText = "";
  withCredentials = false;
  aborted = false;
  upload: { onprogress: ((e: { lengthComputable: boolean; loaded: number; total: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXHR.last = this;
  }
  open(m: string, u: string) {
    this.method = m;
    this.url = u;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(b: unknown) {
    this.body = b;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ lengthComputable: true, loaded, total });
  }
  respond(status: number, body: unknown) {
    this.status = status;
    this.responseText = typeof body === "string" ? body : JSON.stringify(body);
    this.onload?.();
  }
}
const fake = () => new FakeXHR() as unknown as XMLHttpRequest;

describe("uploads", () => {
  it("sends the fields before the file, with the CSRF header, and reports progress", async () => {
    document.cookie = "tf_csrf=abc123";
    const progress = vi.fn();
    const file = new File(["hello world"], "notes.txt", { type: "text/plain" });
    const p = uploadAttachment("/tasks/WEB-1/attachments", file, { onProgress: progress, xhr: fake });
    const x = FakeXHR.last;
    expect(x.method).toBe("POST");
    expect(x.url).toBe("/api/v1/tasks/WEB-1/attachments");
    expect(x.headers["X-CSRF-Token"]).toBe("abc123");
    expect(x.withCredentials).toBe(true);
    const fd = x.body as FormData;
    expect([...fd.keys()]).toEqual(["name", "file"]);
    x.progress(5, 11);
    x.progress(11, 11);
    expect(progress.mock.calls.map((c) => percent(c[0]))).toEqual([45, 100]);
    x.respond(201, { id: "a1", name: "notes.txt" });
    await expect(p).resolves.toMatchObject({ id: "a1", name: "notes.txt" });
  });

  it("a recorded message carries kind and duration_ms ahead of the file", () => {
    const fd = uploadForm(new Blob(["x"], { type: "audio/webm" }), { name: "Voice.webm", kind: "audio_message", durationMs: 2345.6 });
    expect([...fd.keys()]).toEqual(["name", "kind", "duration_ms", "file"]);
    expect(fd.get("duration_ms")).toBe("2346");
    expect(fd.get("kind")).toBe("audio_message");
  });

  it("cancelling aborts the request and rejects with an AbortError", async () => {
    const ctl = new AbortController();
    const p = uploadAttachment("/tasks/t/attachments", new Blob(["x"]), { signal: ctl.signal, xhr: fake });
    const x = FakeXHR.last;
    x.progress(1, 10);
    ctl.abort();
    expect(x.aborted).toBe(true);
    const e = await p.catch((err) => err);
    expect(isAbort(e)).toBe(true);
  });

  it("an already-cancelled signal sends nothing", async () => {
    const ctl = new AbortController();
    ctl.abort();
    const before = FakeXHR.last;
    const e = await uploadAttachment("/tasks/t/attachments", new Blob(["x"]), { signal: ctl.signal, xhr: fake }).catch((err) => err);
    expect(isAbort(e)).toBe(true);
    expect(FakeXHR.last).toBe(before);
  });

  it("a 413 problem becomes an ApiError with its code and details", async () => {
    const p = uploadAttachment("/tasks/t/attachments", new Blob(["x"]), { xhr: fake });
    FakeXHR.last.respond(413, { status: 413, code: "storage_quota_exceeded", detail: "over quota", details: { plan: "Free", max: 1_000_000_000, used: 999_000_000 } });
    const e = await p.catch((err) => err);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.code).toBe("storage_quota_exceeded");
    expect(describeUploadError(e, "big.zip")).toBe("“big.zip” does not fit in the Free plan's storage (999 MB of 1 GB used). Delete files you no longer need, or ask for a bigger plan.");
  });

  it("a network failure is an ApiError with code network", async () => {
    const p = uploadAttachment("/tasks/t/attachments", new Blob(["x"]), { xhr: fake });
    FakeXHR.last.onerror?.();
    await expect(p).rejects.toMatchObject({ code: "network" });
  });

  it("describes the size refusals", () => {
    expect(describeUploadError(new ApiError({ status: 413, code: "file_too_large", details: { max_bytes: 268435456 } }), "movie.mov")).toBe("“movie.mov” is too large: files may be at most 268 MB.");
    expect(describeUploadError(new ApiError({ status: 413, code: "file_too_large" }))).toBe("The file is too large.");
    expect(describeUploadError(new ApiError({ status: 422, code: "empty_file" }), "a.txt")).toBe("“a.txt” is empty.");
    expect(describeUploadError(new Error("x"), "a.txt")).toBe("“a.txt” could not be uploaded. Please try again.");
  });

  it("formats sizes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1000)).toBe("1 kB");
    expect(formatBytes(1450)).toBe("1.4 kB");
    expect(formatBytes(23_400_000)).toBe("23.4 MB");
    expect(formatBytes(256_000_000)).toBe("256 MB");
    expect(percent(undefined)).toBe(0);
    expect(percent({ loaded: 5, total: 0 })).toBe(0);
  });
});

describe("recorder state machine", () => {
  const blob = new Blob(["x"], { type: "audio/webm" });
  const run = (events: Parameters<typeof recorderReducer>[1][], from: RecorderState = initialRecorder) => events.reduce(recorderReducer, from);

  it("records, stops and sends", () => {
    let s = run([{ type: "start", kind: "audio_message" }]);
    expect(s.status).toBe("requesting");
    s = run([{ type: "granted", at: 1000 }, { type: "tick", at: 3500 }], s);
    expect(s).toMatchObject({ status: "recording", elapsedMs: 2500 });
    s = run([{ type: "stop", at: 4200 }], s);
    expect(s).toMatchObject({ status: "stopping", durationMs: 3200 });
    s = run([{ type: "data", blob, url: "blob:1", mimeType: "audio/webm" }], s);
    expect(s).toMatchObject({ status: "recorded", durationMs: 3200, url: "blob:1" });
    expect(stateUrl(s)).toBe("blob:1");
    s = run([{ type: "send" }, { type: "progress", loaded: 1, total: 2 }], s);
    expect(s).toMatchObject({ status: "sending", loaded: 1, total: 2 });
    expect(run([{ type: "sent" }], s)).toEqual({ status: "idle" });
  });

  it("a failed send keeps the recording, with the error, to send again or discard", () => {
    const s = run([{ type: "start", kind: "video_message" }, { type: "granted", at: 0 }, { type: "stop", at: 10 }, { type: "data", blob, url: "blob:2", mimeType: "video/webm" }, { type: "send" }, { type: "failed", message: "too large" }]);
    expect(s).toMatchObject({ status: "recorded", kind: "video_message", error: "too large" });
    expect(run([{ type: "send" }], s).status).toBe("sending");
    expect(run([{ type: "discard" }], s)).toEqual({ status: "idle" });
  });

  it("denied access is an error; cancel goes back to idle; stray events change nothing", () => {
    const denied = run([{ type: "start", kind: "audio_message" }, { type: "denied", message: "no mic" }]);
    expect(denied).toEqual({ status: "error", kind: "audio_message", message: "no mic" });
    expect(run([{ type: "dismiss" }], denied)).toEqual({ status: "idle" });
    expect(run([{ type: "start", kind: "audio_message" }], denied).status).toBe("requesting");
    expect(run([{ type: "start", kind: "audio_message" }, { type: "granted", at: 0 }, { type: "cancel" }])).toEqual({ status: "idle" });
    expect(run([{ type: "stop", at: 5 }, { type: "send" }, { type: "sent" }, { type: "tick", at: 9 }])).toEqual({ status: "idle" });
    const rec = run([{ type: "start", kind: "audio_message" }, { type: "granted", at: 0 }]);
    expect(run([{ type: "start", kind: "video_message" }], rec)).toBe(rec);
    // A stop in the same millisecond still gives a positive duration (the API needs 1 … 14,400,000).
    expect(run([{ type: "stop", at: 0 }], rec)).toMatchObject({ durationMs: 1 });
  });

  it("picks a container the browser supports and names the file", () => {
    expect(pickMimeType("audio_message", (t) => t === "audio/webm")).toBe("audio/webm");
    expect(pickMimeType("audio_message", (t) => t.startsWith("audio/mp4"))).toBe("audio/mp4");
    expect(pickMimeType("video_message", () => false)).toBe("");
    expect(pickMimeType("video_message", () => {
      throw new Error("unknown");
    })).toBe("");
    expect(uploadType("audio_message", "audio/webm;codecs=opus")).toBe("audio/webm");
    expect(uploadType("video_message", "video/webm;codecs=vp8,opus")).toBe("video/webm");
    expect(uploadType("audio_message", "video/webm")).toBe("audio/webm");
    expect(messageFileName("audio_message", "audio/webm", new Date(2030, 4, 1, 14, 3))).toBe("Voice message 2030-05-01 14.03.webm");
    expect(messageFileName("video_message", "video/mp4", new Date(2030, 11, 9, 8, 0))).toBe("Video message 2030-12-09 08.00.mp4");
  });

  it("formats the elapsed time and explains device errors", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(65_400)).toBe("1:05");
    expect(formatDuration(3_725_000)).toBe("1:02:05");
    expect(formatDuration(null)).toBe("0:00");
    expect(describeMediaError({ name: "NotAllowedError" }, "audio_message")).toMatch(/not allowed to use the microphone/);
    expect(describeMediaError({ name: "NotFoundError" }, "video_message")).toBe("No camera and microphone was found.");
  });
});

describe("network lists", () => {
  it("splits lines and commas, drops comments and duplicates", () => {
    expect(splitList(" 10.0.0.0/8 \n\n192.168.1.1, 10.0.0.0/8 # office\n# only a comment")).toEqual(["10.0.0.0/8", "192.168.1.1"]);
  });

  it("accepts addresses and CIDRs, IPv4 and IPv6", () => {
    for (const ok of ["127.0.0.1", "127.0.0.0/8", "0.0.0.0/0", "10.1.2.3/32", "::1", "::1/128", "2001:db8::/32", "fe80::1", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"]) {
      expect(networkProblem(ok), ok).toBe("");
    }
    expect(networkProblem("10.0.0.0/33")).toBe("has a prefix length over 32");
    expect(networkProblem("2001:db8::/129")).toBe("has a prefix length over 128");
    expect(networkProblem("256.1.1.1")).toBe("is not an IPv4 or IPv6 address");
    expect(networkProblem("10.0.0")).toBe("is not an IPv4 or IPv6 address");
    expect(networkProblem("010.0.0.1")).toBe("is not an IPv4 or IPv6 address");
    expect(networkProblem("example.com")).toBe("is not an IPv4 or IPv6 address");
    expect(networkProblem("10.0.0.0/x")).toBe("has a prefix length that is not a number");
    expect(networkProblem("10.0.0.0/8/8")).toBe("has more than one “/”");
    expect(isIPv6("1::2::3")).toBe(false);
    expect(isIPv6("1:2:3:4:5:6:7:8:9")).toBe(false);
    expect(isIPv6("12345::")).toBe(false);
  });

  it("lists every bad line", () => {
    const c = checkAllowlist("127.0.0.1\nnope\n10.0.0.0/40");
    expect(c.values).toEqual(["127.0.0.1", "nope", "10.0.0.0/40"]);
    expect(c.errors).toEqual(["nope is not an IPv4 or IPv6 address", "10.0.0.0/40 has a prefix length over 32"]);
    expect(checkAllowlist(Array.from({ length: 101 }, (_, i) => `10.0.${Math.floor(i / 250)}.${i % 250}`).join("\n")).errors).toEqual(["At most 100 networks."]);
  });

  it("tells whether an IPv4 address is inside a network", () => {
    expect(ipv4InNetwork("127.0.0.1", "127.0.0.0/8")).toBe(true);
    expect(ipv4InNetwork("127.0.0.1", "127.0.0.1")).toBe(true);
    expect(ipv4InNetwork("128.0.0.1", "127.0.0.0/8")).toBe(false);
    expect(ipv4InNetwork("10.9.8.7", "0.0.0.0/0")).toBe(true);
    expect(ipv4InNetwork("192.168.1.200", "192.168.1.128/25")).toBe(true);
    expect(ipv4InNetwork("192.168.1.100", "192.168.1.128/25")).toBe(false);
  });

  it("normalizes origins like the server: https, or http on localhost, no path", () => {
    expect(normalizeOrigin("https://App.Example.com")).toBe("https://app.example.com");
    expect(normalizeOrigin("https://app.example.com/")).toBe("https://app.example.com");
    expect(normalizeOrigin("https://app.example.com:8443")).toBe("https://app.example.com:8443");
    expect(normalizeOrigin("http://localhost:5173")).toBe("http://localhost:5173");
    expect(normalizeOrigin("http://app.example.com")).toBe("");
    expect(normalizeOrigin("https://app.example.com/path")).toBe("");
    expect(normalizeOrigin("https://user@app.example.com")).toBe("");
    expect(normalizeOrigin("app.example.com")).toBe("");
    const c = checkOrigins("https://a.example\nhttps://A.example/\nftp://x");
    expect(c.values).toEqual(["https://a.example"]);
    expect(c.errors).toEqual(["ftp://x is not an https origin such as https://app.example.com (no path)"]);
  });
});
