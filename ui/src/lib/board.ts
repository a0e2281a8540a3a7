// Pure board logic: columns by status, and where a dropped card goes. The
// API places a card with {status, move: {after_id}} where after_id is the
// card it should follow in its (new) column, "" for the top.

import type { Status, Task } from "../api/types";

export type Columns = Record<string, Task[]>;

/** Groups tasks into the project's status columns, each in position order. */
export function toColumns(statuses: Status[], tasks: Task[]): Columns {
  const cols: Columns = {};
  for (const s of statuses) cols[s.id] = [];
  for (const t of tasks) (cols[t.status_id] ??= []).push(t);
  for (const id of Object.keys(cols)) cols[id].sort(byPosition);
  return cols;
}

export function byPosition(a: Task, b: Task): number {
  if (a.position < b.position) return -1;
  if (a.position > b.position) return 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function findColumn(cols: Columns, taskId: string): string | undefined {
  for (const [id, list] of Object.entries(cols)) if (list.some((t) => t.id === taskId)) return id;
  return undefined;
}

export interface Move {
  taskId: string;
  toStatus: string;
  /** Index in the destination column once the card is removed from its old place. */
  toIndex: number;
}

/** The after_id the API needs for a move: the card before the drop slot, or "" for the top. */
export function afterIdFor(cols: Columns, move: Move): string {
  const dest = (cols[move.toStatus] ?? []).filter((t) => t.id !== move.taskId);
  const i = Math.max(0, Math.min(move.toIndex, dest.length));
  return i === 0 ? "" : dest[i - 1].id;
}

/** The columns after a move (a new object; inputs untouched). Returns null when nothing changes. */
export function applyMove(cols: Columns, move: Move, statusName?: string, category?: Task["status_category"]): Columns | null {
  const from = findColumn(cols, move.taskId);
  if (!from) return null;
  const task = cols[from].find((t) => t.id === move.taskId)!;
  const fromIndex = cols[from].indexOf(task);
  if (from === move.toStatus && fromIndex === move.toIndex) return null;
  const out: Columns = { ...cols, [from]: cols[from].filter((t) => t.id !== move.taskId) };
  const dest = [...(out[move.toStatus] ?? [])];
  const moved: Task = from === move.toStatus ? task : { ...task, status_id: move.toStatus, status: statusName ?? task.status, status_category: category ?? task.status_category };
  dest.splice(Math.max(0, Math.min(move.toIndex, dest.length)), 0, moved);
  out[move.toStatus] = dest;
  return out;
}

/** The flat task list of columns, for caching. */
export function flatten(cols: Columns): Task[] {
  return Object.values(cols).flat();
}
