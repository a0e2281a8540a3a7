// The onboarding checklist, derived from real data (no stored progress).

import type { Me, Member, Project } from "../api/types";

export interface ChecklistInput {
  me?: Me;
  projects?: Project[];
  anyTask?: boolean;
  members?: Member[];
  pendingInvites?: number;
}

export interface ChecklistItem {
  id: "project" | "task" | "invite" | "profile";
  label: string;
  done: boolean;
  href: string;
}

/** A profile counts as completed once its owner has saved it (or a password change) since joining. */
export function profileCompleted(me?: Me): boolean {
  if (!me) return false;
  return new Date(me.updated_at).getTime() - new Date(me.created_at).getTime() > 1000;
}

export function checklist(i: ChecklistInput): ChecklistItem[] {
  const firstProject = i.projects?.[0];
  return [
    { id: "project", label: "Create a project", done: (i.projects?.length ?? 0) > 0, href: "/projects?new=1" },
    { id: "task", label: "Add a task", done: !!i.anyTask, href: firstProject ? `/projects/${firstProject.id}/board` : "/projects" },
    { id: "invite", label: "Invite a teammate", done: (i.members?.length ?? 0) > 1 || (i.pendingInvites ?? 0) > 0, href: "/people?invite=1" },
    { id: "profile", label: "Complete your profile", done: profileCompleted(i.me), href: "/profile" },
  ];
}
