// The small, eager part of the account-security logic (sign-in, the app
// frame): second-factor state and code input, mail availability, rate-limit
// notices. The rest, for the lazy security screens, is in security.ts.

import type { Me } from "../api/types";

export type MfaState =
  | { kind: "enabled" }
  | { kind: "optional" }
  /** Required from deadline on; until then the app works and says so. */
  | { kind: "grace"; deadline: Date }
  /** Past the deadline: the server answers only enrolment (403 mfa_enrolment_required). */
  | { kind: "due"; deadline: Date };

export function mfaState(me: Pick<Me, "mfa_enabled" | "mfa_required_by"> | undefined, now = Date.now()): MfaState {
  if (me?.mfa_enabled) return { kind: "enabled" };
  const by = me?.mfa_required_by ? new Date(me.mfa_required_by) : null;
  if (!by || isNaN(by.getTime())) return { kind: "optional" };
  return by.getTime() <= now ? { kind: "due", deadline: by } : { kind: "grace", deadline: by };
}

/** What the user typed as an authenticator code: digits only ("123 456" → "123456"). */
export function cleanTotp(input: string): string {
  return input.replace(/[\s-]/g, "");
}

export function isTotp(input: string): boolean {
  return /^\d{6}$/.test(cleanTotp(input));
}

/** A recovery code as the server compares it: lower case, no spaces or dashes, then grouped again for display. */
export function cleanRecoveryCode(input: string): string {
  return input.trim().toLowerCase().replace(/\s+/g, "");
}

// ---- Mail: the server says 409 mail_unavailable when it sends none. ----
// GET /setup's `mail` says so beforehand; for a server that does not (an
// older one), the first such answer hides the mail options (magic link,
// forgot password) for a day in this browser.

const MAIL_OFF = "teamflow.mailOff";
const DAY = 24 * 3600 * 1000;

export function mailKnownOff(storage: Pick<Storage, "getItem"> | undefined = safeStorage(), now = Date.now()): boolean {
  const v = Number(storage?.getItem(MAIL_OFF) ?? 0);
  return v > 0 && now - v < DAY;
}

export function rememberMailOff(storage: Pick<Storage, "setItem"> | undefined = safeStorage(), now = Date.now()): void {
  try {
    storage?.setItem(MAIL_OFF, String(now));
  } catch {
    /* private mode */
  }
}

export function forgetMailOff(storage: Pick<Storage, "removeItem"> | undefined = safeStorage()): void {
  try {
    storage?.removeItem(MAIL_OFF);
  } catch {
    /* private mode */
  }
}

function safeStorage(): Storage | undefined {
  try {
    return typeof localStorage === "undefined" ? undefined : localStorage;
  } catch {
    return undefined;
  }
}

// ---- Rate limits: one toast per wait, not one per refused request. ----

export class RateLimitNotices {
  private until = 0;
  /** Whether a refusal now, with this wait, deserves a new toast. */
  shouldAnnounce(retryAfterSeconds: number | undefined, now = Date.now()): boolean {
    if (now < this.until) return false;
    this.until = now + (retryAfterSeconds ?? 30) * 1000;
    return true;
  }
}
