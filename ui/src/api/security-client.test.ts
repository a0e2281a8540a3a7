import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, formatWait, onAppProblem, onSessionEnded, parseRetryAfter, requestRaw } from "./client";

function res(status: number, body?: unknown, headers: Record<string, string> = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/problem+json", ...headers } });
}

describe("rate limits and app-wide problems", () => {
  beforeEach(() => {
    document.cookie = "tf_csrf=csrf-1; path=/";
  });
  afterEach(() => vi.restoreAllMocks());

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("42")).toBe(42);
    expect(parseRetryAfter("0")).toBe(1);
    const now = Date.parse("2030-01-01T00:00:00Z");
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:01:30 GMT", now)).toBe(90);
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:00 GMT", now + 5000)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it("words a wait for people", () => {
    expect(formatWait(1)).toBe("1 second");
    expect(formatWait(42)).toBe("42 seconds");
    expect(formatWait(61)).toBe("2 minutes");
    expect(formatWait(3600)).toBe("1 hour");
    expect(formatWait(3900)).toBe("1 hour 5 minutes");
  });

  it("a 429 becomes a rate_limited ApiError with retryAfter, and listeners hear it once", async () => {
    const heard: ApiError[] = [];
    const off = onAppProblem((e) => heard.push(e));
    const f = (async () => res(429, { status: 429, code: "rate_limited", detail: "more than 1000 requests in 1h0m0s" }, { "Retry-After": "17" })) as unknown as typeof fetch;
    const err = await requestRaw("/projects", {}, f).catch((e) => e);
    off();
    expect(err).toBeInstanceOf(ApiError);
    expect(err.isRateLimited).toBe(true);
    expect(err.retryAfter).toBe(17);
    expect(heard).toHaveLength(1);
    expect(heard[0]).toBe(err);
  });

  it("a 429 without a problem body is still rate_limited", async () => {
    const f = (async () => new Response("slow down", { status: 429, headers: { "Retry-After": "3" } })) as unknown as typeof fetch;
    const err = await requestRaw("/projects", {}, f).catch((e) => e);
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfter).toBe(3);
  });

  it("announces mfa_enrolment_required, but not other 403s", async () => {
    const heard: string[] = [];
    const off = onAppProblem((e) => heard.push(e.code));
    const enrol = (async () => res(403, { status: 403, code: "mfa_enrolment_required", detail: "enrol" })) as unknown as typeof fetch;
    const plain = (async () => res(403, { status: 403, code: "forbidden" })) as unknown as typeof fetch;
    await requestRaw("/projects", {}, enrol).catch(() => {});
    await requestRaw("/projects", {}, plain).catch(() => {});
    off();
    expect(heard).toEqual(["mfa_enrolment_required"]);
  });

  it("a rate-limited refresh does not end the session", async () => {
    const ended = vi.fn();
    const off = onSessionEnded(ended);
    const heard: string[] = [];
    const off2 = onAppProblem((e) => heard.push(e.code));
    let signedIn = true;
    const f = (async (url: string) => {
      if (url.endsWith("/auth/refresh")) return res(429, { status: 429, code: "rate_limited" }, { "Retry-After": "9" });
      return signedIn ? res(200, {}) : res(401, { status: 401, code: "invalid_token" });
    }) as unknown as typeof fetch;
    await requestRaw("/me", {}, f);
    signedIn = false;
    await new Promise((r) => setTimeout(r, 5));
    const err = await requestRaw("/projects", {}, f).catch((e) => e);
    off();
    off2();
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfter).toBe(9);
    expect(ended).not.toHaveBeenCalled();
    expect(heard).toEqual(["rate_limited"]);
  });
});
