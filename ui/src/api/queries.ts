// TanStack Query keys and hooks for the resources every screen shares.

import { useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useMemo } from "react";
import { api, fetchAll, type Page } from "./client";
import type { Me, Member, NotificationList, Plan, PlanInfo, Project, SetupStatus, Workspace } from "./types";

export const keys = {
  setup: ["setup"] as const,
  me: ["me"] as const,
  workspace: ["workspace"] as const,
  plan: ["plan"] as const,
  members: ["members"] as const,
  invitations: ["invitations"] as const,
  projects: ["projects"] as const,
  project: (id: string) => ["project", id] as const,
  board: (id: string) => ["board", id] as const,
  tasks: (projectId: string, filters: Record<string, string>) => ["tasks", projectId, filters] as const,
  myTasks: (filters: Record<string, string>) => ["my-tasks", filters] as const,
  task: (id: string) => ["task", id] as const,
  subtasks: (id: string) => ["subtasks", id] as const,
  comments: (taskId: string) => ["comments", taskId] as const,
  attachments: (taskId: string) => ["attachments", taskId] as const,
  projectActivity: (id: string) => ["activity", "project", id] as const,
  taskActivity: (id: string) => ["activity", "task", id] as const,
  activity: ["activity", "workspace"] as const,
  trash: ["trash"] as const,
  onboarding: ["onboarding"] as const,
  sessions: ["sessions"] as const,
  apiKeys: ["api-keys"] as const,
  audit: ["audit"] as const,
  auditFiltered: (f: Record<string, string>) => ["audit", f] as const,
  plans: ["plans"] as const,
  notifications: (unreadOnly: boolean) => ["notifications", "list", unreadOnly] as const,
  unread: ["notifications", "unread"] as const,
  follow: (taskId: string) => ["follow", taskId] as const,
  teams: ["teams"] as const,
  statusUpdates: (scope: string, id: string) => ["status-updates", scope, id] as const,
  statusUsage: ["status-usage"] as const,
};

export function useSetupStatus() {
  return useQuery({ queryKey: keys.setup, queryFn: () => api<SetupStatus>("/setup"), staleTime: 60_000 });
}

export function useMe() {
  return useQuery({ queryKey: keys.me, queryFn: () => api<Me>("/me"), staleTime: 60_000 });
}

export function useWorkspace() {
  return useQuery({ queryKey: keys.workspace, queryFn: () => api<Workspace>("/workspace"), staleTime: 60_000 });
}

export function usePlan() {
  return useQuery({ queryKey: keys.plan, queryFn: () => api<PlanInfo>("/workspace/plan"), staleTime: 30_000 });
}

/** The plan catalogue (public): which plans have which features. */
export function usePlans() {
  return useQuery({ queryKey: keys.plans, queryFn: () => api<{ items: Plan[] }>("/plans").then((r) => r.items), staleTime: 10 * 60_000 });
}

export function useMembers() {
  return useQuery({ queryKey: keys.members, queryFn: ({ signal }) => fetchAll<Member>("/members", {}, 50, signal), staleTime: 60_000 });
}

/** id → member, and a name lookup that never fails. */
export function useMemberLookup() {
  const q = useMembers();
  return useMemo(() => {
    const byId = new Map<string, Member>();
    for (const m of q.data ?? []) byId.set(m.id, m);
    const nameOf = (id: string) => (id === "operator" ? "The platform operator" : id === "system" ? "TeamFlow" : (byId.get(id)?.name ?? "Someone"));
    return { byId, nameOf, members: q.data ?? [], query: q };
  }, [q]);
}

export function useProjects() {
  return useQuery({ queryKey: keys.projects, queryFn: ({ signal }) => fetchAll<Project>("/projects", {}, 20, signal), staleTime: 30_000 });
}

export function useProject(id: string) {
  const qc = useQueryClient();
  return useQuery({
    queryKey: keys.project(id),
    queryFn: () => api<Project>(`/projects/${encodeURIComponent(id)}`),
    staleTime: 30_000,
    initialData: () => qc.getQueryData<Project[]>(keys.projects)?.find((p) => p.id === id),
    initialDataUpdatedAt: () => qc.getQueryState(keys.projects)?.dataUpdatedAt,
  });
}

/** Forgets everything cached for the signed-in user (sign-out, account switch). */
export function clearSession(qc: QueryClient) {
  qc.removeQueries({ predicate: (q) => q.queryKey[0] !== "setup" });
}

export type { Page };

/** The unread count for the top bar (live events invalidate it). */
export function useUnreadCount(on = true) {
  return useQuery({
    queryKey: keys.unread,
    enabled: on,
    queryFn: ({ signal }) => api<NotificationList>("/notifications", { query: { unread: true, limit: 1 }, signal }).then((r) => r.unread),
    staleTime: 30_000,
    refetchInterval: 120_000,
  });
}
