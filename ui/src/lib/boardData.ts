// Loading a board's columns: kept apart from the board screen so that the
// data can be fetched before (and in parallel with) the screen's code.

import { fetchAll } from "../api/client";
import type { Project, Task } from "../api/types";
import { toColumns, type Columns } from "./board";

/** Loads every column in parallel, each in position order (following cursors). */
export async function loadBoard(project: Project, signal?: AbortSignal): Promise<Columns> {
  const lists = await Promise.all(project.statuses.map((s) => fetchAll<Task>(`/projects/${project.id}/tasks`, { status: s.id, sort: "position" }, 100, signal)));
  return toColumns(project.statuses, lists.flat());
}
