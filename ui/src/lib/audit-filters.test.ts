import { describe, expect, it } from "vitest";
import { auditFilterQuery, checkAuditRange, describeAuditAction, fromLocalInput } from "./security";

describe("audit filters", () => {
  it("sends only what is set, times as RFC 3339", () => {
    expect(auditFilterQuery({ actor: "", action: "  ", from: "", to: "" })).toEqual({});
    const q = auditFilterQuery({ actor: "u1", action: " auth. ", from: "2030-05-01T10:00", to: "" });
    expect(q.actor).toBe("u1");
    expect(q.action).toBe("auth.");
    expect(q.from).toBe(new Date(2030, 4, 1, 10, 0).toISOString());
    expect("to" in q).toBe(false);
    expect(fromLocalInput("not a date")).toBe("");
  });

  it("refuses a range that ends before it starts", () => {
    expect(checkAuditRange({ from: "2030-05-02T10:00", to: "2030-05-01T10:00" })).toBe("The start must be before the end.");
    expect(checkAuditRange({ from: "2030-05-01T10:00", to: "2030-05-01T10:00" })).toBe("The start must be before the end.");
    expect(checkAuditRange({ from: "2030-05-01T10:00", to: "" })).toBe("");
    expect(checkAuditRange({ from: "", to: "" })).toBe("");
  });

  it("names the new security actions", () => {
    expect(describeAuditAction("member.mfa_reset")).toBe("Reset a member's two-factor authentication");
    expect(describeAuditAction("invitation.resend")).toBe("Resent an invitation");
    expect(describeAuditAction("audit.verify")).toBe("Verified the audit chain");
  });
});
