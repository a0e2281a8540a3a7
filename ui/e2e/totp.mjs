// RFC 6238 TOTP (HMAC-SHA1, 30-second steps, 6 digits) with node:crypto, for
// the browser tests: they read the setup key off the screen and type codes
// the way an authenticator app would.

import { createHmac } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 (no padding needed, spaces ignored). */
export function base32Decode(s) {
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.replace(/[\s=]/g, "").toUpperCase()) {
    const i = ALPHABET.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** HOTP (RFC 4226) of a counter; TOTP is HOTP of the time step. */
export function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac("sha1", key).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 10 ** digits).padStart(digits, "0");
}

export const PERIOD = 30;

export function totpAt(secret, step) {
  return hotp(base32Decode(secret), step);
}

/**
 * Codes for one account, each from a later time step than the last one used
 * (the server accepts a step once, and steps within ±1 of now). Waits for
 * the clock when the next usable step is not there yet.
 */
export class Authenticator {
  constructor(secret) {
    this.secret = secret.replace(/\s+/g, "");
    this.last = -Infinity;
  }
  async code() {
    for (;;) {
      const now = Date.now() / 1000;
      const cur = Math.floor(now / PERIOD);
      const left = (cur + 1) * PERIOD - now;
      // cur-1 only while the server cannot cross into cur+1 before it checks.
      const candidates = [left > 5 ? cur - 1 : null, cur, cur + 1].filter((s) => s !== null && s > this.last);
      if (candidates.length) {
        const step = candidates[0];
        this.last = step;
        return totpAt(this.secret, step);
      }
      await new Promise((r) => setTimeout(r, left * 1000 + 300));
    }
  }
  /** A code the server must refuse (a step it already accepted). */
  reused() {
    return totpAt(this.secret, this.last);
  }
}
