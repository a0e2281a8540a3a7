import { useEffect } from "react";
import { NavLink, Outlet, useOutletContext, useParams } from "react-router";
import { useProject } from "../api/queries";
import type { Project } from "../api/types";
import { Presence } from "../components/Presence";
import { ErrorState, Loading } from "../components/ui";
import { useLive } from "../lib/live";

export function useProjectContext(): Project {
  return useOutletContext<Project>();
}

/** A project's header and its views: board, list, activity. */
export default function ProjectFrame() {
  const { projectId = "" } = useParams();
  const project = useProject(projectId);
  // Board, list and activity all follow the project live; presence is per project.
  const { present } = useLive(projectId ? { kind: "project", id: projectId } : null);
  useEffect(() => {
    if (project.data) document.title = `${project.data.name} · TeamFlow`;
  }, [project.data]);
  if (project.isPending) return <Loading />;
  if (project.isError) return <ErrorState error={project.error} retry={() => project.refetch()} />;
  const p = project.data;
  return (
    <>
      <div className="page-header">
        <h1>
          <span className="project-key">{p.key}</span> {p.name}
        </h1>
      </div>
      <nav className="tabs" aria-label="Project views">
        <NavLink to={`/projects/${p.id}/board`}>Board</NavLink>
        <NavLink to={`/projects/${p.id}/list`}>List</NavLink>
        <NavLink to={`/projects/${p.id}/activity`}>Activity</NavLink>
        <NavLink to={`/status-updates?project=${p.id}`}>Status updates</NavLink>
      </nav>
      <Presence viewers={present} what="project" />
      <Outlet context={p} />
    </>
  );
}
