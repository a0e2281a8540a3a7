// Words for activity entries (engine/activity.go records typed changes:
// kind, field, before, after).

import type { ActivityEntry } from "../api/types";

export type NameOf = (id: string) => string;

function val(v: unknown, nameOf: NameOf, field?: string): string {
  if (v === null || v === undefined || v === "") return "nothing";
  if (typeof v === "string") {
    if (field === "assignees" || field === "parent_id") return field === "assignees" ? nameOf(v) : "a task";
    return v.length > 80 ? v.slice(0, 77) + "…" : v;
  }
  if (Array.isArray(v)) return v.length ? v.map((x) => val(x, nameOf)).join(", ") : "none";
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.name === "string") return o.name;
    if (typeof o.email === "string") return o.email;
  }
  return JSON.stringify(v);
}

const FIELD_LABELS: Record<string, string> = {
  due: "the due date",
  parent_id: "the parent task",
  work_hours: "the work hours",
  position: "the position",
};

/** One sentence without the actor: "changed status from To do to Done". */
export function describeActivity(e: ActivityEntry, nameOf: NameOf): string {
  const f = e.field ?? "";
  const label = FIELD_LABELS[f] ?? f.replace(/_/g, " ");
  switch (e.kind) {
    case "task.created":
      return `created task “${val(e.after, nameOf)}”`;
    case "task.deleted":
      return `deleted task “${val(e.before, nameOf)}”`;
    case "task.restored":
      return `restored task “${val(e.after, nameOf)}”`;
    case "task.assigned":
      return `assigned ${val(e.after, nameOf, "assignees")}`;
    case "task.unassigned":
      return `unassigned ${val(e.before, nameOf, "assignees")}`;
    case "task.updated":
      if (f === "position") return "reordered a card";
      if (f === "description") return "edited the description";
      return `changed ${label} from ${val(e.before, nameOf, f)} to ${val(e.after, nameOf, f)}`;
    case "comment.created":
      return "commented";
    case "comment.mentioned":
      return `mentioned ${val(e.after, nameOf, "assignees")}`;
    case "comment.updated":
      return "edited a comment";
    case "comment.deleted":
      return "deleted a comment";
    case "comment.restored":
      return "restored a comment";
    case "project.created":
      return `created project “${val(e.after, nameOf)}”`;
    case "project.updated":
      return `changed the project's ${label}`;
    case "project.deleted":
      return "moved the project to the trash";
    case "project.restored":
      return "restored the project";
    case "project.member_set":
      return `made ${nameOf(e.target.id)} ${val(e.after, nameOf)} of the project`;
    case "project.member_removed":
      return `removed ${nameOf(e.target.id)} from the project`;
    case "member.joined":
      return "joined the workspace";
    case "member.updated":
      if (f === "role" || f === "status") return `changed ${nameOf(e.target.id)}'s ${label} from ${val(e.before, nameOf)} to ${val(e.after, nameOf)}`;
      return `updated ${f === "name" ? "their name" : `their ${label}`}`;
    case "invitation.created":
      return `invited ${val(e.after, nameOf)}`;
    case "invitation.revoked":
      return "revoked an invitation";
    case "workspace.created":
      return `created the workspace “${val(e.after, nameOf)}”`;
    case "workspace.updated":
      return `changed the workspace's ${label}`;
    case "workspace.plan_changed":
      return `changed the plan to ${val(e.after, nameOf)}`;
  }
  return e.kind.replace(/[._]/g, " ");
}
