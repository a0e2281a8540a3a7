import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { api, type Page } from "../api/client";
import { keys, useMe, useMembers, useProjects } from "../api/queries";
import type { Invitation, Task } from "../api/types";
import { Loading } from "../components/ui";
import { checklist } from "../lib/onboarding";

function useAnyTask(projectIds: string[]) {
  return useQuery({
    queryKey: [...keys.onboarding, "tasks", projectIds],
    enabled: projectIds.length > 0,
    queryFn: async () => {
      const pages = await Promise.all(projectIds.slice(0, 10).map((id) => api<Page<Task>>(`/projects/${id}/tasks`, { query: { limit: 1 } })));
      return pages.some((p) => p.items.length > 0);
    },
  });
}

export default function Home() {
  const me = useMe();
  const projects = useProjects();
  const members = useMembers();
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  const invites = useQuery({
    queryKey: [...keys.invitations, "first"],
    enabled: isAdmin,
    queryFn: () => api<Page<Invitation>>("/invitations", { query: { limit: 50 } }),
  });
  const anyTask = useAnyTask((projects.data ?? []).map((p) => p.id));
  const hideKey = `teamflow.onboardingHidden.${me.data?.id ?? ""}`;
  const [hidden, setHidden] = useState(() => localStorage.getItem(hideKey) === "1");
  useEffect(() => setHidden(localStorage.getItem(hideKey) === "1"), [hideKey]);

  const items = checklist({
    me: me.data,
    projects: projects.data,
    anyTask: anyTask.data,
    members: members.data,
    pendingInvites: invites.data?.items.filter((i) => i.status === "pending").length,
  });
  const done = items.filter((i) => i.done).length;
  const loading = projects.isPending || members.isPending;

  return (
    <>
      <div className="page-header">
        <h1>Welcome{me.data ? `, ${me.data.name.split(" ")[0]}` : ""}</h1>
      </div>
      {!hidden && (
        <section className="card" aria-labelledby="onboarding-title" style={{ marginBottom: "1.25rem" }}>
          <div className="page-header" style={{ marginBottom: "0.5rem" }}>
            <h2 id="onboarding-title" style={{ margin: 0 }}>
              Get started
            </h2>
            <button
              type="button"
              className="btn-small btn-ghost"
              onClick={() => {
                localStorage.setItem(hideKey, "1");
                setHidden(true);
              }}
            >
              Hide checklist
            </button>
          </div>
          {loading ? (
            <Loading />
          ) : (
            <>
              <p className="muted small" id="onboarding-progress">
                {done} of {items.length} done
              </p>
              <div className="progress" role="progressbar" aria-labelledby="onboarding-progress" aria-valuemin={0} aria-valuemax={items.length} aria-valuenow={done}>
                <span style={{ width: `${(done / items.length) * 100}%` }} />
              </div>
              <ul className="checklist" aria-label="Onboarding checklist">
                {items.map((i) => (
                  <li key={i.id} data-done={i.done}>
                    <span className={`check${i.done ? " done" : ""}`} aria-hidden="true">
                      {i.done ? "✓" : ""}
                    </span>
                    {i.done ? (
                      <span>
                        {i.label} <span className="visually-hidden">(done)</span>
                      </span>
                    ) : (
                      <Link to={i.href}>{i.label}</Link>
                    )}
                  </li>
                ))}
              </ul>
            </>
          )}
        </section>
      )}
      <section aria-labelledby="recent-projects">
        <h2 id="recent-projects">Projects</h2>
        {projects.isPending ? (
          <Loading />
        ) : (projects.data ?? []).length === 0 ? (
          <p className="muted">
            No projects yet. <Link to="/projects?new=1">Create the first one</Link>.
          </p>
        ) : (
          <ul className="grid" style={{ listStyle: "none", padding: 0 }}>
            {(projects.data ?? []).slice(0, 6).map((p) => (
              <li key={p.id}>
                <Link className="card project-card" to={`/projects/${p.id}/board`}>
                  <span className="project-key">{p.key}</span>
                  <strong>{p.name}</strong>
                </Link>
              </li>
            ))}
          </ul>
        )}
        <p>
          <Link to="/my-tasks">See the tasks assigned to you</Link>
        </p>
      </section>
    </>
  );
}
