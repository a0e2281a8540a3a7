import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, buildUrl, fieldName, onSessionEnded, readCookie, requestRaw } from "./client";

function res(status: number, body?: unknown, headers: Record<string, string> = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

describe("api client", () => {
  beforeEach(() => {
    document.cookie = "tf_csrf=csrf-123; path=/";
  });
  afterEach(() => vi.restoreAllMocks());

  it("reads cookies and builds URLs without empty parameters", () => {
    expect(readCookie("tf_csrf", "a=1; tf_csrf=x%20y; b=2")).toBe("x y");
    expect(buildUrl("/projects/p/tasks", { status: "s", tag: "", cursor: undefined, limit: 50 })).toBe("/api/v1/projects/p/tasks?status=s&limit=50");
    expect(fieldName("body.workspace_slug")).toBe("workspace_slug");
  });

  it("sends the CSRF token on writes, If-Match with a version, never on reads", async () => {
    const calls: [string, RequestInit][] = [];
    const f = vi.fn(async (url: string, init: RequestInit) => {
      calls.push([url, init]);
      return res(200, { ok: true }, { ETag: '"4"' });
    }) as unknown as typeof fetch;
    await requestRaw("/tasks/t", { method: "PATCH", body: { title: "x" }, version: 3 }, f);
    await requestRaw("/tasks/t", {}, f);
    const h0 = calls[0][1].headers as Record<string, string>;
    expect(h0["X-CSRF-Token"]).toBe("csrf-123");
    expect(h0["If-Match"]).toBe('"3"');
    expect(calls[0][1].credentials).toBe("same-origin");
    expect((calls[1][1].headers as Record<string, string>)["X-CSRF-Token"]).toBeUndefined();
  });

  it("turns problem+json into an ApiError with field errors and plan details", async () => {
    const f = (async () =>
      res(403, { status: 403, code: "plan_limit_reached", detail: "the Free plan allows 5 projects", details: { limit: "projects", plan: "Free", max: 5 } })) as unknown as typeof fetch;
    const err = await requestRaw("/projects", { method: "POST", body: {} }, f).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.isPlanLimit).toBe(true);
    expect(err.details.max).toBe(5);
    const v = new ApiError({ status: 422, code: "validation_failed", detail: "validation failed", errors: [{ message: "expected length >= 8", location: "body.password" }] });
    expect(v.fieldErrors()).toEqual({ password: "expected length >= 8" });
  });

  it("refreshes once on invalid_token and retries the request", async () => {
    const seen: string[] = [];
    let n = 0;
    const f = (async (url: string, init: RequestInit) => {
      seen.push(`${init.method} ${url}`);
      if (url.endsWith("/auth/refresh")) return res(200, { token_type: "Cookie" });
      return n++ === 0 ? res(401, { status: 401, code: "invalid_token" }) : res(200, { id: "me" });
    }) as unknown as typeof fetch;
    const r = await requestRaw<{ id: string }>("/me", {}, f);
    expect(r.data.id).toBe("me");
    expect(seen).toEqual(["GET /api/v1/me", "POST /api/v1/auth/refresh", "GET /api/v1/me"]);
  });

  it("does not rotate again when another tab already refreshed the session", async () => {
    const seen: string[] = [];
    let n = 0;
    const f = (async (url: string, init: RequestInit) => {
      seen.push(`${init.method} ${url}`);
      if (n++ === 0) {
        document.cookie = "tf_csrf=rotated-by-another-tab; path=/"; // the other tab's refresh landed meanwhile
        return res(401, { status: 401, code: "invalid_token" });
      }
      return res(200, { id: "me" });
    }) as unknown as typeof fetch;
    await new Promise((r) => setTimeout(r, 5));
    const r = await requestRaw<{ id: string }>("/me", {}, f);
    expect(r.data.id).toBe("me");
    expect(seen).toEqual(["GET /api/v1/me", "GET /api/v1/me"]);
  });

  it("ends the session when the refresh fails after having been signed in", async () => {
    const ended = vi.fn();
    const off = onSessionEnded(ended);
    let signedIn = true;
    const f = (async (url: string) => {
      if (url.endsWith("/auth/refresh")) return res(401, { status: 401, code: "invalid_token" });
      return signedIn ? res(200, {}) : res(401, { status: 401, code: "invalid_token" });
    }) as unknown as typeof fetch;
    await requestRaw("/me", {}, f);
    signedIn = false;
    await new Promise((r) => setTimeout(r, 5));
    const err = await requestRaw("/projects", {}, f).catch((e) => e);
    expect(err.code).toBe("invalid_token");
    expect(ended).toHaveBeenCalledTimes(1);
    off();
  });

  it("reports a network failure as code network", async () => {
    const f = (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch;
    const err = await requestRaw("/me", {}, f).catch((e) => e);
    expect(err.code).toBe("network");
  });
});
