// Pure helpers of the account-security screens: second-factor state and
// setup keys and recovery codes, sessions, API keys, audit entries (lazy
// screens only; the eager part is mfa.ts, re-exported here).

import type { ApiKey, AuditEntry } from "../api/types";

export * from "./mfa";

/** "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP": easier to type into an app. */
export function groupSecret(secret: string): string {
  return secret.replace(/\s+/g, "").replace(/(.{4})(?=.)/g, "$1 ");
}

export function recoveryCodesText(codes: string[], account: string, workspace: string, date = new Date()): string {
  return [
    `TeamFlow recovery codes for ${account} (${workspace})`,
    `Created ${date.toISOString().slice(0, 10)}. Each code works once, in place of the authenticator app.`,
    "",
    ...codes,
    "",
  ].join("\n");
}

/** A short, human name for a browser's user agent: "Chrome on Linux", "Safari on iPhone". */
export function describeUserAgent(ua: string): string {
  if (!ua) return "Unknown device";
  const os = /iPhone/.test(ua)
    ? "iPhone"
    : /iPad/.test(ua)
      ? "iPad"
      : /Android/.test(ua)
        ? "Android"
        : /Windows/.test(ua)
          ? "Windows"
          : /Mac OS X|Macintosh/.test(ua)
            ? "macOS"
            : /CrOS/.test(ua)
              ? "ChromeOS"
              : /Linux/.test(ua)
                ? "Linux"
                : "";
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /OPR\//.test(ua)
      ? "Opera"
      : /Firefox\//.test(ua)
        ? "Firefox"
        : /HeadlessChrome\//.test(ua)
          ? "Headless Chrome"
          : /Chrom(e|ium)\//.test(ua)
            ? "Chrome"
            : /Safari\//.test(ua)
              ? "Safari"
              : /^curl\//.test(ua)
                ? "curl"
                : /^node/i.test(ua)
                  ? "Node.js"
                  : "";
  if (browser && os) return `${browser} on ${os}`;
  if (browser || os) return browser || os;
  return ua.length > 40 ? ua.slice(0, 40) + "…" : ua;
}

/** "password+totp" → "Password and authenticator app". */
export function describeSignInMethod(method: string): string {
  const parts = method.split("+").map((p) => p.trim());
  const names: Record<string, string> = {
    password: "Password",
    magic_link: "Email link",
    signup: "Sign-up",
    setup: "First-run setup",
    invitation: "Invitation",
    refresh: "Password",
    totp: "authenticator app",
    recovery: "recovery code",
    recovery_code: "recovery code",
  };
  const words = parts.map((p, i) => {
    const n = names[p] ?? p.replace(/_/g, " ");
    return i === 0 ? n.charAt(0).toUpperCase() + n.slice(1) : n;
  });
  return words.join(" and ");
}

export function describeScopes(k: Pick<ApiKey, "scopes">): string {
  return k.scopes.includes("write") ? "Read and write" : "Read only";
}

/**
 * An expiry date from a date input ("2030-01-31") as the end of that day in
 * the viewer's timezone, RFC 3339; "" for none.
 */
export function expiresAtFromDate(date: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
  return d.toISOString();
}

// ---- Audit entries, for people. ----

const ACTIONS: Record<string, string> = {
  "workspace.signup": "Created the workspace",
  "workspace.setup": "Set up the installation",
  "workspace.update": "Changed workspace settings",
  "auth.login": "Signed in",
  "auth.login_failed": "Failed sign-in",
  "auth.account_locked": "Account locked after failed sign-ins",
  "auth.logout": "Signed out a session",
  "auth.mfa": "Completed sign-in with a second factor",
  "auth.mfa_failed": "Wrong second-factor code",
  "auth.refresh_reuse": "Reused session token (session ended)",
  "auth.sessions_revoked": "Signed out other sessions",
  "auth.verify_email": "Confirmed email address",
  "auth.password_reset": "Reset password by email",
  "auth.password_reset_requested": "Requested a password reset",
  "auth.magic_link": "Signed in with an email link",
  "auth.magic_link_requested": "Requested a sign-in link",
  "auth.password_change": "Changed password",
  "mfa.begin": "Started two-factor setup",
  "mfa.enrol": "Turned on two-factor authentication",
  "mfa.disable": "Turned off two-factor authentication",
  "member.update": "Changed a member",
  "member.sessions_revoked": "Signed a member out everywhere",
  "apikey.create": "Created an API key",
  "apikey.revoke": "Revoked an API key",
  "invitation.create": "Invited someone",
  "invitation.revoke": "Revoked an invitation",
  "invitation.accept": "Accepted an invitation",
  "platform.plan": "Plan changed by the operator",
  "platform.plan_change": "Plan changed by the operator",
  "member.mfa_reset": "Reset a member's two-factor authentication",
  "mfa.recovery_codes": "Replaced recovery codes",
  "invitation.resend": "Resent an invitation",
  "audit.export": "Exported the audit log",
  "audit.verify": "Verified the audit chain",
  "auth.ip_refused": "Refused: address outside the allowlist",
  "auth.mfa_locked": "Second factor paused after wrong codes",
  "auth.reauth_failed": "Wrong password when confirming",
  "auth.token_refused": "Refused a token",
  "authz.denied": "Refused an action",
};

export function describeAuditAction(action: string): string {
  if (ACTIONS[action]) return ACTIONS[action];
  const [, rest = action] = action.split(/\.(.*)/s);
  const words = rest.replace(/[._]/g, " ").trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : action;
}

export function describeAuditActor(actor: string, nameOf: (id: string) => string | undefined): string {
  if (actor === "anonymous" || !actor) return "Someone not signed in";
  if (actor === "system") return "TeamFlow";
  if (actor === "operator") return "The platform operator";
  return nameOf(actor) ?? "A former member";
}

/** The detail map of an entry as "key: value" pairs, for display. */
export function auditDetailPairs(e: Pick<AuditEntry, "detail">): [string, string][] {
  if (!e.detail) return [];
  return Object.entries(e.detail).map(([k, v]) => [k.replace(/_/g, " "), typeof v === "string" ? v : Array.isArray(v) ? v.map(String).join(", ") : JSON.stringify(v)]);
}

// ---- Audit filters. ----

export interface AuditFilters {
  actor: string;
  action: string;
  /** datetime-local values ("2030-05-01T14:30"), in the viewer's timezone. */
  from: string;
  to: string;
}

/** Actions and prefixes offered in the action filter. */
export const AUDIT_ACTION_SUGGESTIONS = ["auth.", "mfa.", "member.", "invitation.", "apikey.", "workspace.", "audit.", "platform.", ...Object.keys(ACTIONS)];

/** A datetime-local value as RFC 3339 (UTC), or "" when empty or not a date. */
export function fromLocalInput(v: string): string {
  if (!v) return "";
  const t = new Date(v);
  return isNaN(t.getTime()) ? "" : t.toISOString();
}

/** The API's query for the filters: only what is set, times as RFC 3339. */
export function auditFilterQuery(f: AuditFilters): Record<string, string> {
  const q: Record<string, string> = {};
  if (f.actor) q.actor = f.actor;
  if (f.action.trim()) q.action = f.action.trim();
  const from = fromLocalInput(f.from);
  const to = fromLocalInput(f.to);
  if (from) q.from = from;
  if (to) q.to = to;
  return q;
}

/** Why a time range cannot be used, or "". */
export function checkAuditRange(f: Pick<AuditFilters, "from" | "to">): string {
  if (f.from && !fromLocalInput(f.from)) return "The start is not a date and time.";
  if (f.to && !fromLocalInput(f.to)) return "The end is not a date and time.";
  if (f.from && f.to && new Date(f.from).getTime() >= new Date(f.to).getTime()) return "The start must be before the end.";
  return "";
}
