// The one place that talks HTTP to /api/v1.
//
// The page never holds a token: the session lives in httpOnly cookies the
// server sets (tf_access, tf_refresh). Every non-GET request echoes the
// readable tf_csrf cookie in X-CSRF-Token (double submit). A 401 with code
// invalid_token triggers one POST /auth/refresh and a retry; if that fails
// the app is told the session is over (see onSessionEnded).
//
// Two answers concern the whole app rather than one screen, so listeners
// hear about them wherever they happen: 429 rate_limited (with Retry-After:
// a toast says how long to wait) and 403 mfa_enrolment_required (an Owner
// or Admin past the second-factor grace period: the app goes to enrolment).

export const API_BASE = "/api/v1";

export interface ProblemDetail {
  message?: string;
  location?: string;
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  code: string;
  field?: string;
  errors?: ProblemDetail[];
  details?: Record<string, unknown>;
  request_id?: string;
}

/** An RFC 9457 problem answered by the API (or a network failure, code "network"). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  readonly errors: ProblemDetail[];
  readonly details?: Record<string, unknown>;
  readonly requestId?: string;
  /** Seconds to wait before trying again (429 Retry-After). */
  readonly retryAfter?: number;

  constructor(p: Problem & { retry_after?: number }) {
    super(p.detail || p.title || p.code || `HTTP ${p.status}`);
    this.name = "ApiError";
    this.status = p.status;
    this.code = p.code || "error";
    this.field = p.field;
    this.errors = p.errors ?? [];
    this.details = p.details;
    this.requestId = p.request_id;
    this.retryAfter = p.retry_after;
  }

  /** Errors by input name: "email", "work_hours.start", "tags[0]"…, plus "" for the form. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    if (this.field) out[this.field] = this.message;
    for (const e of this.errors) {
      const name = fieldName(e.location);
      if (name && !out[name]) out[name] = e.message ?? "invalid";
    }
    if (Object.keys(out).length === 0) out[""] = this.message;
    return out;
  }

  get isPlanLimit(): boolean {
    return this.code === "plan_limit_reached";
  }

  /** The plan lacks a feature (details {feature, plan}). */
  get isPlanFeature(): boolean {
    return this.code === "plan_feature_unavailable";
  }

  get isRateLimited(): boolean {
    return this.status === 429 || this.code === "rate_limited";
  }
}

/**
 * Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
 * Unknown or past values give undefined.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.max(1, parseInt(v, 10));
  const t = Date.parse(v);
  if (isNaN(t)) return undefined;
  const secs = Math.ceil((t - now) / 1000);
  return secs > 0 ? secs : undefined;
}

/** "45 seconds", "2 minutes", "1 hour 5 minutes": a wait, for people. */
export function formatWait(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
  const h = Math.floor(m / 60);
  const rest = m % 60;
  return `${h} hour${h === 1 ? "" : "s"}${rest ? ` ${rest} minute${rest === 1 ? "" : "s"}` : ""}`;
}

/** "body.workspace_slug" → "workspace_slug"; "query.tag" → "tag". */
export function fieldName(location?: string): string {
  if (!location) return "";
  return location.replace(/^(body|query|path|header)\.?/, "");
}

export function readCookie(name: string, cookie = typeof document === "undefined" ? "" : document.cookie): string {
  for (const part of cookie.split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return "";
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  /** The resource's version: sent as If-Match so a stale write answers 412. */
  version?: number;
  signal?: AbortSignal;
  /** Do not try a refresh on 401 (used by the auth calls themselves). */
  noRefresh?: boolean;
}

export function buildUrl(path: string, query?: RequestOptions["query"]): string {
  let url = path.startsWith("/api/") ? path : API_BASE + path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === "") continue;
      qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  return url;
}

type Listener = () => void;
const sessionEndedListeners = new Set<Listener>();
const problemListeners = new Set<(e: ApiError) => void>();

/**
 * Hears every rate_limited and mfa_enrolment_required answer, whichever
 * request got it (the request's caller still gets the error too).
 */
export function onAppProblem(fn: (e: ApiError) => void): () => void {
  problemListeners.add(fn);
  return () => problemListeners.delete(fn);
}

function announce(e: ApiError) {
  if (e.isRateLimited || e.code === "mfa_enrolment_required") problemListeners.forEach((fn) => fn(e));
}

/** Called when the session cannot be refreshed: the app goes to sign-in. */
export function onSessionEnded(fn: Listener): () => void {
  sessionEndedListeners.add(fn);
  return () => sessionEndedListeners.delete(fn);
}

let refreshing: Promise<boolean> | null = null;
// Whether this page has been signed in: only then is a failed refresh "the session ended".
let hadSession = false;

export function markSignedOut() {
  hadSession = false;
}

/**
 * One refresh at a time: concurrent 401s share it, and so do other tabs —
 * a refresh token works once, and presenting a used one again revokes the
 * session, so two tabs must never both rotate it. Under a Web Lock, a tab
 * first checks whether the session was already rotated since its request
 * left (the tf_csrf cookie changes with every rotation) and then just retries.
 */
export function refreshSession(fetchImpl: typeof fetch = fetch, csrfAtRequest?: string): Promise<boolean> {
  if (!refreshing) {
    const run = async (): Promise<boolean> => {
      if (csrfAtRequest !== undefined && readCookie("tf_csrf") && readCookie("tf_csrf") !== csrfAtRequest) return true;
      try {
        const res = await fetchImpl(API_BASE + "/auth/refresh", {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": readCookie("tf_csrf"), Accept: "application/json" },
        });
        // Too many requests says nothing about the session: wait, do not sign out.
        if (res.status === 429) throw new ApiError(await toProblem(res));
        return res.ok;
      } catch (e) {
        if (e instanceof ApiError) throw e;
        return false;
      }
    };
    const locks = typeof navigator !== "undefined" ? (navigator as Navigator & { locks?: LockManager }).locks : undefined;
    refreshing = (locks ? (locks.request("teamflow-session-refresh", run) as unknown as Promise<boolean>) : run()).finally(() => {
      setTimeout(() => (refreshing = null), 0);
    });
  }
  return refreshing;
}

async function toProblem(res: Response): Promise<Problem & { retry_after?: number }> {
  const text = await res.text().catch(() => "");
  const retry_after = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get("Retry-After")) : undefined;
  try {
    const p = JSON.parse(text) as Problem;
    if (p && typeof p === "object") return { ...p, status: p.status || res.status, code: p.code || (res.status === 429 ? "rate_limited" : "error"), retry_after };
  } catch {
    /* not JSON */
  }
  return { status: res.status, code: res.status === 429 ? "rate_limited" : res.status >= 500 ? "internal_error" : "error", detail: text || res.statusText, retry_after };
}

export interface ApiResponse<T> {
  data: T;
  etag: string | null;
  status: number;
}

export async function requestRaw<T>(path: string, opts: RequestOptions = {}, fetchImpl: typeof fetch = fetch): Promise<ApiResponse<T>> {
  const method = (opts.method ?? "GET").toUpperCase();
  const csrfAtRequest = readCookie("tf_csrf");
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const csrf = readCookie("tf_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  if (opts.version) headers["If-Match"] = `"${opts.version}"`;
  const url = buildUrl(path, opts.query);
  const init: RequestInit = {
    method,
    headers,
    credentials: "same-origin",
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  };
  let res: Response;
  try {
    res = await fetchImpl(url, init);
  } catch (e) {
    if ((e as Error)?.name === "AbortError") throw e;
    throw new ApiError({ status: 0, code: "network", detail: "The server could not be reached. Check your connection and try again." });
  }
  if (res.status === 401 && !opts.noRefresh) {
    const p = await toProblem(res);
    if (p.code === "invalid_token" || p.code === "unauthenticated") {
      let ok: boolean;
      try {
        ok = await refreshSession(fetchImpl, csrfAtRequest);
      } catch (e) {
        if (e instanceof ApiError) announce(e);
        throw e;
      }
      if (ok) return requestRaw<T>(path, { ...opts, noRefresh: true }, fetchImpl);
      if (hadSession) {
        hadSession = false;
        sessionEndedListeners.forEach((fn) => fn());
      }
    }
    throw new ApiError(p);
  }
  if (!res.ok) {
    const err = new ApiError(await toProblem(res));
    announce(err);
    throw err;
  }
  if (!opts.noRefresh) hadSession = true;
  const etag = res.headers.get("ETag");
  if (res.status === 204) return { data: undefined as T, etag, status: res.status };
  const text = await res.text();
  return { data: (text ? JSON.parse(text) : undefined) as T, etag, status: res.status };
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  return (await requestRaw<T>(path, opts)).data;
}

export interface Page<T> {
  items: T[];
  next_cursor: string;
}

/** Reads every page of a list (bounded: at most maxPages of 200). */
export async function fetchAll<T>(path: string, query: RequestOptions["query"] = {}, maxPages = 50, signal?: AbortSignal): Promise<T[]> {
  const out: T[] = [];
  let cursor = "";
  for (let i = 0; i < maxPages; i++) {
    const page = await api<Page<T>>(path, { query: { ...query, limit: 200, cursor }, signal });
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}
