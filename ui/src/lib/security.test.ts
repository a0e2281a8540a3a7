import encodeQR from "qr";
import decodeQR from "qr/decode.js";
import { describe, expect, it } from "vitest";
import { qrPath } from "../components/QrCode";
import { graceDays } from "../screens/Settings";
import {
  auditDetailPairs,
  cleanRecoveryCode,
  cleanTotp,
  describeAuditAction,
  describeAuditActor,
  describeScopes,
  describeSignInMethod,
  describeUserAgent,
  expiresAtFromDate,
  groupSecret,
  isTotp,
  mailKnownOff,
  mfaState,
  RateLimitNotices,
  recoveryCodesText,
  rememberMailOff,
} from "./security";

describe("second factor", () => {
  const now = Date.parse("2030-05-01T12:00:00Z");
  it("tells enrolled, optional, grace and due apart", () => {
    expect(mfaState({ mfa_enabled: true, mfa_required_by: "2030-04-01T00:00:00Z" }, now).kind).toBe("enabled");
    expect(mfaState({ mfa_enabled: false }, now).kind).toBe("optional");
    expect(mfaState(undefined, now).kind).toBe("optional");
    const grace = mfaState({ mfa_enabled: false, mfa_required_by: "2030-05-08T12:00:00Z" }, now);
    expect(grace.kind).toBe("grace");
    expect(grace.kind === "grace" && grace.deadline.toISOString()).toBe("2030-05-08T12:00:00.000Z");
    expect(mfaState({ mfa_enabled: false, mfa_required_by: "2030-05-01T12:00:00Z" }, now).kind).toBe("due");
    expect(mfaState({ mfa_required_by: "not a date" }, now).kind).toBe("optional");
  });

  it("cleans what people type", () => {
    expect(cleanTotp(" 123 456 ")).toBe("123456");
    expect(isTotp("123 456")).toBe(true);
    expect(isTotp("12345")).toBe(false);
    expect(isTotp("12a456")).toBe(false);
    expect(cleanRecoveryCode("  ABCDE-fghij-KLMNOP ")).toBe("abcde-fghij-klmnop");
    expect(groupSecret("JBSWY3DPEHPK3PXPJBSWY3DP")).toBe("JBSW Y3DP EHPK 3PXP JBSW Y3DP");
  });

  it("writes recovery codes to a file people can read", () => {
    const t = recoveryCodesText(["aaaaa-bbbbb-cccccc", "ddddd-eeeee-ffffff"], "ada@example.com", "Acme", new Date("2030-01-02T03:04:05Z"));
    expect(t).toContain("ada@example.com (Acme)");
    expect(t).toContain("Created 2030-01-02");
    expect(t.split("\n")).toContain("ddddd-eeeee-ffffff");
  });

  it("draws a QR code that decodes back to the otpauth URL", () => {
    const url = "otpauth://totp/TeamFlow%20Acme:ada@example.com?algorithm=SHA1&digits=6&issuer=TeamFlow%20Acme&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const m = encodeQR(url, "raw", { ecc: "medium", border: 4 });
    const d = qrPath(m);
    expect(d.startsWith("M")).toBe(true);
    // Rasterise the path's runs (4 px a module) and decode them.
    const scale = 4;
    const n = m.length;
    const w = n * scale;
    const px = new Uint8Array(w * w * 4).fill(255);
    for (const [, x, y, run] of d.matchAll(/M(\d+) (\d+)h(\d+)/g)) {
      for (let yy = +y * scale; yy < (+y + 1) * scale; yy++)
        for (let xx = +x * scale; xx < (+x + +run) * scale; xx++) px.fill(0, (yy * w + xx) * 4, (yy * w + xx) * 4 + 3);
    }
    expect(decodeQR({ width: w, height: w, data: px })).toBe(url);
  });
});

describe("sessions and API keys", () => {
  it("names devices", () => {
    expect(describeUserAgent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36")).toBe("Headless Chrome on Linux");
    expect(describeUserAgent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36 Edg/140.0")).toBe("Edge on Windows");
    expect(describeUserAgent("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1")).toBe("Safari on iPhone");
    expect(describeUserAgent("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:130.0) Gecko/20100101 Firefox/130.0")).toBe("Firefox on macOS");
    expect(describeUserAgent("curl/8.5.0")).toBe("curl");
    expect(describeUserAgent("node")).toBe("Node.js");
    expect(describeUserAgent("")).toBe("Unknown device");
  });

  it("words sign-in methods and scopes", () => {
    expect(describeSignInMethod("password")).toBe("Password");
    expect(describeSignInMethod("password+totp")).toBe("Password and authenticator app");
    expect(describeSignInMethod("magic_link+totp")).toBe("Email link and authenticator app");
    expect(describeScopes({ scopes: ["read"] })).toBe("Read only");
    expect(describeScopes({ scopes: ["read", "write"] })).toBe("Read and write");
  });

  it("expires a key at the end of the chosen day, in the viewer's timezone", () => {
    const iso = expiresAtFromDate("2030-01-31")!;
    const d = new Date(iso);
    expect([d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()]).toEqual([2030, 0, 31, 23, 59]);
    expect(expiresAtFromDate("")).toBeUndefined();
    expect(expiresAtFromDate("31/01/2030")).toBeUndefined();
  });
});

describe("audit entries", () => {
  it("describes actions, actors and details", () => {
    expect(describeAuditAction("mfa.enrol")).toBe("Turned on two-factor authentication");
    expect(describeAuditAction("project.export_started")).toBe("Export started");
    const nameOf = (id: string) => ({ u1: "Ada" })[id];
    expect(describeAuditActor("u1", nameOf)).toBe("Ada");
    expect(describeAuditActor("anonymous", nameOf)).toBe("Someone not signed in");
    expect(describeAuditActor("operator", nameOf)).toBe("The platform operator");
    expect(describeAuditActor("gone", nameOf)).toBe("A former member");
    expect(auditDetailPairs({ detail: { name: "CI", scopes: ["read", "write"], count: 2 } })).toEqual([
      ["name", "CI"],
      ["scopes", "read, write"],
      ["count", "2"],
    ]);
    expect(auditDetailPairs({})).toEqual([]);
  });
});

describe("mail availability and rate-limit notices", () => {
  it("remembers that the server sends no mail, for a day", () => {
    const m = new Map<string, string>();
    const storage = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
    const t = 1_900_000_000_000;
    expect(mailKnownOff(storage, t)).toBe(false);
    rememberMailOff(storage, t);
    expect(mailKnownOff(storage, t + 3600_000)).toBe(true);
    expect(mailKnownOff(storage, t + 25 * 3600_000)).toBe(false);
  });

  it("announces one toast per wait", () => {
    const n = new RateLimitNotices();
    expect(n.shouldAnnounce(10, 0)).toBe(true);
    expect(n.shouldAnnounce(10, 2_000)).toBe(false);
    expect(n.shouldAnnounce(10, 9_999)).toBe(false);
    expect(n.shouldAnnounce(10, 10_500)).toBe(true);
    expect(n.shouldAnnounce(undefined, 11_000)).toBe(false);
  });

  it("accepts only whole grace periods of 0 to 90 days", () => {
    expect(graceDays("0")).toBe(0);
    expect(graceDays(" 14 ")).toBe(14);
    expect(graceDays("90")).toBe(90);
    expect(graceDays("91")).toBeUndefined();
    expect(graceDays("")).toBeUndefined();
    expect(graceDays("1.5")).toBeUndefined();
    expect(graceDays("-1")).toBeUndefined();
  });
});
