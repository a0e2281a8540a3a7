import { describe, expect, it } from "vitest";
import type { ActivityEntry, Comment, Me } from "../api/types";
import { threads } from "../components/Comments";
import { safeNext } from "../screens/SignIn";
import { describeActivity } from "./activity";
import { brandVariables } from "./brand";
import { contrastRatio, formatDue, initials, isOverdue, slugify, textOn } from "./format";
import { checklist } from "./onboarding";

describe("format", () => {
  it("initials, slugs, due dates", () => {
    expect(initials("Ada  Lovelace King")).toBe("AK");
    expect(initials("")).toBe("?");
    expect(slugify("Ärger & Co. GmbH!")).toBe("arger-co-gmbh");
    expect(formatDue("2031-03-15", "en-GB")).toBe("15 Mar 2031");
    expect(isOverdue("2020-01-01", new Date("2021-01-01T00:00:00Z"))).toBe(true);
    expect(isOverdue("2021-01-01", new Date("2021-01-01T10:00:00Z"))).toBe(false);
  });

  it("brand colours keep text readable", () => {
    expect(textOn("#ffff00")).toBe("#111827");
    expect(textOn("#0f766e")).toBe("#ffffff");
    const v = brandVariables({ primary_color: "#fde68a", accent_color: "" });
    expect(v["--brand-on-primary"]).toBe("#111827");
    expect(contrastRatio(v["--brand-primary-text"], "#ffffff")).toBeGreaterThanOrEqual(4.5);
    expect(brandVariables(null)["--brand-primary"]).toBe("#4f46e5");
  });
});

describe("activity sentences", () => {
  const nameOf = (id: string) => ({ u1: "Ada", u2: "Bob" })[id] ?? "Someone";
  const e = (x: Partial<ActivityEntry>): ActivityEntry => ({ id: "1", kind: "", target: { kind: "task", id: "t" }, actor: "u1", at: "", ...x });
  it("describes typed changes", () => {
    expect(describeActivity(e({ kind: "task.updated", field: "status", before: { name: "To do" }, after: { name: "Done" } }), nameOf)).toBe("changed status from To do to Done");
    expect(describeActivity(e({ kind: "task.assigned", after: "u2" }), nameOf)).toBe("assigned Bob");
    expect(describeActivity(e({ kind: "task.updated", field: "due", before: "", after: "2031-01-01" }), nameOf)).toBe("changed the due date from nothing to 2031-01-01");
    expect(describeActivity(e({ kind: "invitation.created", after: { email: "x@y.z", role: "member" } }), nameOf)).toBe("invited x@y.z");
    expect(describeActivity(e({ kind: "something.new" }), nameOf)).toBe("something new");
  });
});

describe("comment threads", () => {
  const c = (id: string, parent: string | null): Comment => ({ id, parent_id: parent }) as Comment;
  it("attaches replies (and replies to replies) to their top-level comment", () => {
    const t = threads([c("a", null), c("b", "a"), c("c", null), c("d", "b"), c("e", "gone")]);
    expect(t.map((x) => [x.root.id, x.replies.map((r) => r.id)])).toEqual([
      ["a", ["b", "d"]],
      ["c", []],
      ["e", []],
    ]);
  });
});

describe("onboarding checklist", () => {
  it("is derived from real data", () => {
    const me = { created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z" } as Me;
    expect(checklist({ me }).map((i) => i.done)).toEqual([false, false, false, false]);
    const items = checklist({
      me: { ...me, updated_at: "2026-01-02T00:00:00Z" },
      projects: [{ id: "p" } as never],
      anyTask: true,
      members: [{} as never],
      pendingInvites: 1,
    });
    expect(items.every((i) => i.done)).toBe(true);
  });
});

describe("sign-in redirect", () => {
  it("follows only same-site paths", () => {
    expect(safeNext("/tasks/WEB-1")).toBe("/tasks/WEB-1");
    expect(safeNext("//evil.example")).toBe("/");
    expect(safeNext("https://evil.example")).toBe("/");
    expect(safeNext(null)).toBe("/");
  });
});
