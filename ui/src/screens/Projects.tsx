import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api } from "../api/client";
import { keys, usePlan, useProjects } from "../api/queries";
import type { Project } from "../api/types";
import { EmptyState, ErrorState, Field, FormError, Loading, Modal, SelectField } from "../components/ui";
import { ApiError } from "../api/client";

export default function Projects() {
  const projects = useProjects();
  const plan = usePlan();
  const [params, setParams] = useSearchParams();
  const open = params.get("new") === "1";
  const setOpen = (o: boolean) => setParams(o ? { new: "1" } : {}, { replace: true });
  useEffect(() => {
    document.title = "Projects · TeamFlow";
  }, []);

  const max = plan.data?.plan.max_projects;
  return (
    <>
      <div className="page-header">
        <h1>Projects</h1>
        <button type="button" className="btn-primary" onClick={() => setOpen(true)}>
          New project
        </button>
      </div>
      {plan.data && max !== undefined && max >= 0 && (
        <p className="muted small">
          {plan.data.projects} of {max} projects on the {plan.data.plan.name} plan
        </p>
      )}
      {projects.isPending ? (
        <Loading />
      ) : projects.isError ? (
        <ErrorState error={projects.error} retry={() => projects.refetch()} />
      ) : projects.data.length === 0 ? (
        <EmptyState title="No projects yet">
          <p>A project holds tasks on a board. Create one to start.</p>
          <button type="button" className="btn-primary" onClick={() => setOpen(true)}>
            Create a project
          </button>
        </EmptyState>
      ) : (
        <ul className="grid" style={{ listStyle: "none", padding: 0, margin: 0 }} aria-label="Projects">
          {projects.data.map((p) => (
            <li key={p.id}>
              <Link className="card project-card" to={`/projects/${p.id}/board`}>
                <span className="project-key">{p.key}</span>
                <strong>{p.name}</strong>
                {p.description && <span className="muted small">{p.description.slice(0, 140)}</span>}
                <span className="small muted">
                  {p.visibility === "private" ? "Private" : "Workspace"} · you are {p.role}
                </span>
              </Link>
            </li>
          ))}
        </ul>
      )}
      <Modal open={open} onOpenChange={setOpen} title="New project">
        <CreateProjectForm onDone={() => setOpen(false)} />
      </Modal>
    </>
  );
}

function CreateProjectForm({ onDone }: { onDone: () => void }) {
  const qc = useQueryClient();
  const nav = useNavigate();
  const [name, setName] = useState("");
  const [key, setKey] = useState("");
  const [description, setDescription] = useState("");
  const [visibility, setVisibility] = useState<"workspace" | "private">("workspace");
  const create = useMutation({
    mutationFn: () => api<Project>("/projects", { method: "POST", body: { name: name.trim(), key: key.trim() || undefined, description, visibility } }),
    onSuccess: (p) => {
      qc.setQueryData<Project[]>(keys.projects, (xs) => (xs ? [...xs, p] : [p]));
      qc.setQueryData(keys.project(p.id), p);
      void qc.invalidateQueries({ queryKey: keys.plan });
      void qc.invalidateQueries({ queryKey: keys.onboarding });
      onDone();
      nav(`/projects/${p.id}/board`);
    },
  });
  const fe = create.error instanceof ApiError ? create.error.fieldErrors() : {};
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    create.mutate();
  }
  return (
    <form onSubmit={onSubmit} noValidate>
      <FormError error={create.error} fields={["name", "key", "description", "visibility"]} />
      <Field label="Name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={120} autoFocus error={fe.name} />
      <Field label="Key" name="key" value={key} onChange={(e) => setKey(e.target.value.toUpperCase())} maxLength={10} hint="2–10 capitals or digits that prefix task numbers (WEB-12); derived from the name when empty" error={fe.key} />
      <div className="field">
        <label htmlFor="project-description">Description</label>
        <textarea id="project-description" value={description} onChange={(e) => setDescription(e.target.value)} maxLength={65536} />
      </div>
      <SelectField label="Visibility" name="visibility" value={visibility} onChange={(e) => setVisibility(e.target.value as "workspace" | "private")} error={fe.visibility}>
        <option value="workspace">Everyone in the workspace</option>
        <option value="private">Private: only its members</option>
      </SelectField>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create project"}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
