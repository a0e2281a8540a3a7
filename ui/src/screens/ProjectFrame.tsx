import { useEffect } from "react";
import { NavLink, Outlet, useOutletContext, useParams } from "react-router";
import { useProject } from "../api/queries";
import type { Project } from "../api/types";
import { ErrorState, Loading } from "../components/ui";

export function useProjectContext(): Project {
  return useOutletContext<Project>();
}

/** A project's header and its views: board, list, activity. */
export default function ProjectFrame() {
  const { projectId = "" } = useParams();
  const project = useProject(projectId);
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
      </nav>
      <Outlet context={p} />
    </>
  );
}
