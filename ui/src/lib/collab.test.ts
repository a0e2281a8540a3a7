import { describe, expect, it } from "vitest";
import { parseSSE } from "./sse";
import { factIndex, linkRefs } from "../screens/StatusUpdates";
import { composeQuery, markOnly } from "../screens/Search";
import { describeSchedule } from "../screens/Teams";
import { describeNotification } from "../screens/Inbox";
import type { Notification } from "../api/types";

describe("parseSSE", () => {
  it("splits complete events and keeps the rest", () => {
    const { events, rest } = parseSSE('event: text\ndata: {"text":"a"}\n\n: comment\n\nevent: update\r\ndata: {"id":1}\r\n\r\nevent: te');
    expect(events).toEqual([
      { event: "text", data: '{"text":"a"}' },
      { event: "update", data: '{"id":1}' },
    ]);
    expect(rest).toBe("event: te");
  });
  it("joins multi-line data and defaults the event name", () => {
    expect(parseSSE("data: a\ndata: b\n\n").events).toEqual([{ event: "message", data: "a\nb" }]);
  });
});

describe("status update references", () => {
  const facts = {
    completed: [{ ref: "C1", task_id: "t1", key: "WEB-1", title: "Fix <login>" }],
    people: [{ ref: "P1", user_id: "u1", name: "Ada" }],
    totals: { completed: 1 },
  };
  it("indexes every list's facts by ref", () => {
    const idx = factIndex(facts);
    expect([...idx.keys()]).toEqual(["C1", "P1"]);
  });
  it("links task refs, titles people refs, leaves unknown refs", () => {
    const html = linkRefs("<li>Done [C1], by [P1], see [Q9]</li>", factIndex(facts));
    expect(html).toContain('<a class="ref-link" href="/tasks/WEB-1" data-route title="WEB-1 Fix &#60;login&#62;">[C1]</a>');
    expect(html).toContain('<span class="ref-link" title="Ada">[P1]</span>');
    expect(html).toContain("[Q9]");
  });
});

describe("search", () => {
  it("writes the filters into the saved query", () => {
    expect(composeQuery(" launch ", { kind: "task", status: "todo", project: "WEB", mine: true })).toBe("launch kind:task status:todo project:WEB assignee:me");
    expect(composeQuery("", { kind: "", status: "done", project: "", mine: false })).toBe("status:done");
  });
  it("keeps only <mark> in highlights", () => {
    expect(markOnly('a <mark>b</mark> <img src=x onerror=alert(1)>c')).toBe("a <mark>b</mark> c");
  });
});

describe("teams and inbox wording", () => {
  it("describes schedules", () => {
    expect(describeSchedule({ frequency: "weekly", hour: 16, weekday: 5 }, "Asia/Tokyo")).toBe("Every Friday at 16:00 (Asia/Tokyo)");
    expect(describeSchedule({ frequency: "daily", hour: 9 }, "UTC")).toBe("Every working day at 09:00 (UTC)");
    expect(describeSchedule({ frequency: "off", hour: 9 }, "UTC")).toBe("No scheduled updates");
  });
  it("describes notifications", () => {
    const n = { kind: "assigned", title: "Plan", actor: "u" } as Notification;
    expect(describeNotification(n, "Ada")).toBe("Ada assigned you to Plan");
    expect(describeNotification({ ...n, kind: "due_soon" }, "TeamFlow")).toBe("Plan is due soon");
  });
});
