import { describe, expect, it } from "vitest";
import type { Status, Task } from "../api/types";
import { afterIdFor, applyMove, toColumns } from "./board";

const statuses: Status[] = [
  { id: "todo", name: "To do", category: "todo" },
  { id: "doing", name: "In progress", category: "in_progress" },
  { id: "done", name: "Done", category: "done" },
];
const task = (id: string, status: string, position: string): Task =>
  ({ id, status_id: status, status: status, status_category: "todo", position, key: id, title: id }) as unknown as Task;

describe("board", () => {
  const tasks = [task("c", "todo", "c"), task("a", "todo", "a"), task("b", "todo", "b"), task("x", "doing", "m")];
  const cols = toColumns(statuses, tasks);

  it("groups by status in position order, with empty columns", () => {
    expect(cols.todo.map((t) => t.id)).toEqual(["a", "b", "c"]);
    expect(cols.doing.map((t) => t.id)).toEqual(["x"]);
    expect(cols.done).toEqual([]);
  });

  it("names the card to follow, or '' for the top", () => {
    expect(afterIdFor(cols, { taskId: "c", toStatus: "todo", toIndex: 0 })).toBe("");
    expect(afterIdFor(cols, { taskId: "a", toStatus: "todo", toIndex: 1 })).toBe("b");
    expect(afterIdFor(cols, { taskId: "a", toStatus: "doing", toIndex: 1 })).toBe("x");
    expect(afterIdFor(cols, { taskId: "a", toStatus: "done", toIndex: 0 })).toBe("");
  });

  it("moves within and between columns without touching the input", () => {
    const within = applyMove(cols, { taskId: "c", toStatus: "todo", toIndex: 0 })!;
    expect(within.todo.map((t) => t.id)).toEqual(["c", "a", "b"]);
    const across = applyMove(cols, { taskId: "b", toStatus: "done", toIndex: 0 }, "Done", "done")!;
    expect(across.todo.map((t) => t.id)).toEqual(["a", "c"]);
    expect(across.done[0]).toMatchObject({ id: "b", status_id: "done", status: "Done", status_category: "done" });
    expect(cols.todo.map((t) => t.id)).toEqual(["a", "b", "c"]);
    expect(applyMove(cols, { taskId: "a", toStatus: "todo", toIndex: 0 })).toBeNull();
  });
});
