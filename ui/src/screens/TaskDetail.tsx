// One task: title, description, properties, subtasks, comments, activity.
// Every change is a PATCH with If-Match, applied optimistically and rolled
// back on error; a 412 reloads the task and says so.

import * as Popover from "@radix-ui/react-popover";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError, fetchAll } from "../api/client";
import { keys, useMemberLookup, useProject } from "../api/queries";
import { PRIORITIES, type Member, type Project, type Task } from "../api/types";
import { ActivityFeed } from "../components/ActivityFeed";
import { Presence } from "../components/Presence";
import { Comments } from "../components/Comments";
import { useToast } from "../components/toast";
import { Avatar, ErrorState, Loading, Modal } from "../components/ui";
import { dueDateInput, formatDateTime } from "../lib/format";
import { fixMentionHtml } from "../lib/html";
import { useLive } from "../lib/live";
import { enabled } from "../features";

const RichEditor = lazy(() => import("../components/RichEditor"));
const Attachments = lazy(() => import("../components/Attachments"));

export type TaskPatch = Partial<{
  title: string;
  description: string;
  status: string;
  assignees: string[];
  due: string | null;
  priority: string;
  tags: string[];
  parent_id: string | null;
}>;

/** PATCH a task with its version; optimistic on the cached task, rolled back on error. */
export function useTaskPatch(cacheKey: string, task: Task | undefined, project?: Project) {
  const qc = useQueryClient();
  const { toastError } = useToast();
  return useMutation({
    mutationFn: (patch: TaskPatch) => api<Task>(`/tasks/${task!.id}`, { method: "PATCH", version: task!.version, body: patch }),
    onMutate: async (patch) => {
      await qc.cancelQueries({ queryKey: keys.task(cacheKey) });
      const prev = qc.getQueryData<Task>(keys.task(cacheKey));
      if (prev) {
        const next: Task = { ...prev, ...(patch as Partial<Task>) };
        if (patch.status && project) {
          const st = project.statuses.find((s) => s.id === patch.status);
          if (st) Object.assign(next, { status_id: st.id, status: st.name, status_category: st.category });
        }
        qc.setQueryData(keys.task(cacheKey), next);
      }
      return { prev };
    },
    onError: (err, _p, ctx) => {
      if (ctx?.prev) qc.setQueryData(keys.task(cacheKey), ctx.prev);
      toastError(err, "save the change");
      if (err instanceof ApiError && err.status === 412) void qc.invalidateQueries({ queryKey: keys.task(cacheKey) });
    },
    onSuccess: (t) => {
      // The answer carries description_html, so a description save needs no re-read.
      qc.setQueryData<Task>(keys.task(cacheKey), t);
      void qc.invalidateQueries({ queryKey: keys.board(t.project_id) });
      void qc.invalidateQueries({ queryKey: ["tasks", t.project_id] });
      void qc.invalidateQueries({ queryKey: keys.taskActivity(t.id) });
      if (t.parent_id) void qc.invalidateQueries({ queryKey: keys.subtasks(t.parent_id) });
    },
  });
}

export default function TaskDetail() {
  const { taskId = "" } = useParams();
  const task = useQuery({ queryKey: keys.task(taskId), queryFn: () => api<Task>(`/tasks/${encodeURIComponent(taskId)}`) });
  const project = useProject(task.data?.project_id ?? "");
  const { present } = useLive(task.data ? { kind: "task", id: task.data.id } : null);
  useEffect(() => {
    if (task.data) document.title = `${task.data.key} ${task.data.title} · TeamFlow`;
  }, [task.data]);

  if (task.isPending) return <Loading label="Loading the task…" />;
  if (task.isError) return <ErrorState error={task.error} retry={() => task.refetch()} />;
  if (!project.data) return project.isError ? <ErrorState error={project.error} /> : <Loading />;
  return <TaskView cacheKey={taskId} task={task.data} project={project.data} present={present} />;
}

/** Follow or stop following a task: comments and status changes on it go to the inbox. */
function FollowButton({ task }: { task: Task }) {
  const qc = useQueryClient();
  const { toastError } = useToast();
  const follow = useQuery({ queryKey: keys.follow(task.id), queryFn: () => api<{ following: boolean }>(`/tasks/${task.id}/follow`).then((r) => r.following) });
  const set = useMutation({
    mutationFn: (on: boolean) => api<{ following: boolean }>(`/tasks/${task.id}/follow`, { method: on ? "PUT" : "DELETE" }).then((r) => r.following),
    onMutate: (on) => {
      const prev = qc.getQueryData<boolean>(keys.follow(task.id));
      qc.setQueryData(keys.follow(task.id), on);
      return { prev };
    },
    onError: (e, _on, ctx) => {
      qc.setQueryData(keys.follow(task.id), ctx?.prev);
      toastError(e, "change following");
    },
    onSuccess: (v) => qc.setQueryData(keys.follow(task.id), v),
  });
  if (follow.isPending || follow.isError) return null;
  const on = follow.data;
  return (
    <div className="field">
      <button type="button" aria-pressed={on} onClick={() => set.mutate(!on)} disabled={set.isPending} data-testid="follow">
        {on ? "Following" : "Follow"}
      </button>
      <span className="field-hint">{on ? "Comments and status changes on this task go to your inbox." : "Get comments and status changes on this task in your inbox."}</span>
    </div>
  );
}

function TaskView({ cacheKey, task, project, present }: { cacheKey: string; task: Task; project: Project; present: string[] }) {
  const patch = useTaskPatch(cacheKey, task, project);
  const { members, byId, nameOf } = useMemberLookup();
  const [title, setTitle] = useState(task.title);
  const [editing, setEditing] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const canEdit = project.role !== "observer";
  const qc = useQueryClient();
  const nav = useNavigate();
  const { toast, toastError } = useToast();
  useEffect(() => setTitle(task.title), [task.title]);

  const parent = useQuery({
    queryKey: keys.task(task.parent_id ?? ""),
    enabled: !!task.parent_id,
    queryFn: () => api<Task>(`/tasks/${task.parent_id}`),
  });

  const del = useMutation({
    mutationFn: () => api(`/tasks/${task.id}`, { method: "DELETE", version: task.version }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.board(project.id) });
      void qc.invalidateQueries({ queryKey: ["tasks", project.id] });
      void qc.invalidateQueries({ queryKey: keys.trash });
      toast({ title: `${task.key} moved to the trash`, description: "You can restore it from the trash.", action: { label: "Trash", href: "/trash" } });
      nav(`/projects/${project.id}/board`);
    },
    onError: (e) => {
      setConfirmDelete(false);
      toastError(e, "delete the task");
      if (e instanceof ApiError && e.status === 412) void qc.invalidateQueries({ queryKey: keys.task(cacheKey) });
    },
  });

  function saveTitle() {
    const t = title.trim();
    if (!t) return setTitle(task.title);
    if (t !== task.title) patch.mutate({ title: t });
  }

  return (
    <article aria-labelledby="task-title">
      <nav aria-label="Breadcrumb" className="small muted" style={{ marginBottom: "0.5rem" }}>
        <Link to={`/projects/${project.id}/board`}>{project.name}</Link>
        {parent.data && (
          <>
            {" / "}
            <Link to={`/tasks/${parent.data.key}`}>
              {parent.data.key} {parent.data.title}
            </Link>
          </>
        )}
        {" / "}
        <span>{task.key}</span>
      </nav>
      <div className="task-layout">
        <div>
          <h1 id="task-title" className="visually-hidden">
            {task.key} {task.title}
          </h1>
          <label htmlFor="task-title-input" className="visually-hidden">
            Title
          </label>
          <input
            id="task-title-input"
            className="task-title-input"
            value={title}
            readOnly={!canEdit}
            onChange={(e) => setTitle(e.target.value)}
            onBlur={saveTitle}
            onKeyDown={(e) => {
              if (e.key === "Enter") e.currentTarget.blur();
              if (e.key === "Escape") setTitle(task.title);
            }}
            maxLength={500}
          />
          <section aria-labelledby="desc-h">
            <div className="page-header" style={{ margin: "1rem 0 0.25rem" }}>
              <h2 id="desc-h" style={{ margin: 0 }}>
                Description
              </h2>
              {canEdit && !editing && (
                <button type="button" className="btn-small" onClick={() => setEditing(true)}>
                  Edit description
                </button>
              )}
            </div>
            {editing ? (
              <Suspense fallback={<Loading label="Loading the editor…" />}>
                <RichEditor
                  label="Description"
                  initialHTML={fixMentionHtml(task.description_html ?? "")}
                  placeholder="Describe the task. Type @ to mention someone."
                  members={members}
                  submitLabel="Save"
                  autoFocus
                  pending={patch.isPending}
                  onSubmit={async (md) => {
                    if (md === task.description.trim()) {
                      setEditing(false);
                      return true;
                    }
                    try {
                      await patch.mutateAsync({ description: md });
                      setEditing(false);
                      return true;
                    } catch {
                      return false;
                    }
                  }}
                  onCancel={() => setEditing(false)}
                />
              </Suspense>
            ) : task.description_html ? (
              <div className="prose" data-testid="description" dangerouslySetInnerHTML={{ __html: fixMentionHtml(task.description_html) }} />
            ) : (
              <p className="muted">No description.</p>
            )}
          </section>
          <Subtasks task={task} project={project} canEdit={canEdit} />
          {enabled("attachments") && (
            <Suspense fallback={<Loading label="Loading attachments…" />}>
              <Attachments task={task} project={project} canUpload={canEdit} />
            </Suspense>
          )}
          <section aria-labelledby="comments-h">
            <h2 id="comments-h">Comments</h2>
            <Comments task={task} canComment={canEdit} />
          </section>
          <section aria-labelledby="activity-h">
            <h2 id="activity-h">Activity</h2>
            <ActivityFeed path={`/tasks/${task.id}/activity`} queryKey={keys.taskActivity(task.id)} taskId={task.id} emptyText="No activity on this task yet." />
          </section>
        </div>
        <aside aria-label="Task properties">
          <Presence viewers={present} what="task" />
          <div className="card prop-list">
            <FollowButton task={task} />
            <div className="field">
              <label htmlFor="prop-status">Status</label>
              <select id="prop-status" value={task.status_id} disabled={!canEdit} onChange={(e) => patch.mutate({ status: e.target.value })}>
                {project.statuses.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="prop-priority">Priority</label>
              <select id="prop-priority" value={task.priority} disabled={!canEdit} onChange={(e) => patch.mutate({ priority: e.target.value })}>
                {PRIORITIES.map((p) => (
                  <option key={p} value={p}>
                    {p}
                  </option>
                ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor="prop-due">Due date</label>
              <div className="copy-row">
                <input id="prop-due" type="date" value={dueDateInput(task.due)} disabled={!canEdit} onChange={(e) => patch.mutate({ due: e.target.value || null })} />
                {task.due && canEdit && (
                  <button type="button" className="btn-small" onClick={() => patch.mutate({ due: null })} aria-label="Clear the due date">
                    Clear
                  </button>
                )}
              </div>
            </div>
            <Assignees task={task} members={members} byId={byId} canEdit={canEdit} onChange={(assignees) => patch.mutate({ assignees })} />
            <Tags tags={task.tags} canEdit={canEdit} onChange={(tags) => patch.mutate({ tags })} />
            <div className="small muted">
              Created {formatDateTime(task.created_at)} by {nameOf(task.created_by)}
              <br />
              Updated {formatDateTime(task.updated_at)} by {nameOf(task.updated_by)}
            </div>
            {canEdit && (
              <button type="button" className="btn-danger" onClick={() => setConfirmDelete(true)}>
                Delete task
              </button>
            )}
          </div>
        </aside>
      </div>
      <Modal open={confirmDelete} onOpenChange={setConfirmDelete} title={`Delete ${task.key}?`} description="The task and its subtasks move to the trash, where they can be restored until they are purged.">
        <div className="form-actions">
          <button type="button" className="btn-danger" onClick={() => del.mutate()} disabled={del.isPending}>
            {del.isPending ? "Deleting…" : "Move to trash"}
          </button>
          <button type="button" onClick={() => setConfirmDelete(false)}>
            Cancel
          </button>
        </div>
      </Modal>
    </article>
  );
}

function Assignees({ task, members, byId, canEdit, onChange }: { task: Task; members: Member[]; byId: Map<string, Member>; canEdit: boolean; onChange: (a: string[]) => void }) {
  const active = members.filter((m) => m.status === "active" || task.assignees.includes(m.id));
  function toggle(id: string) {
    onChange(task.assignees.includes(id) ? task.assignees.filter((a) => a !== id) : [...task.assignees, id]);
  }
  return (
    <div className="field">
      <span className="field-label" id="assignees-label">
        Assignees
      </span>
      <div className="tag-list" role="group" aria-labelledby="assignees-label">
        {task.assignees.length === 0 && <span className="muted small">Nobody</span>}
        {task.assignees.map((a) => (
          <span key={a} className="tag-chip" style={{ paddingLeft: 2 }}>
            <Avatar name={byId.get(a)?.name ?? "?"} /> {byId.get(a)?.name ?? "Someone"}
          </span>
        ))}
      </div>
      {canEdit && (
        <Popover.Root>
          <Popover.Trigger asChild>
            <button type="button" className="btn-small" style={{ alignSelf: "flex-start" }}>
              Change assignees
            </button>
          </Popover.Trigger>
          <Popover.Portal>
            <Popover.Content className="popover" align="start" sideOffset={4} aria-label="Choose assignees">
              <fieldset style={{ border: "none", padding: 0, margin: 0 }}>
                <legend className="visually-hidden">Assignees</legend>
                {active.map((m) => (
                  <label key={m.id} style={{ display: "flex", gap: "0.5rem", alignItems: "center", padding: "0.3rem" }}>
                    <input type="checkbox" checked={task.assignees.includes(m.id)} onChange={() => toggle(m.id)} />
                    {m.name} <span className="muted small">{m.email}</span>
                  </label>
                ))}
              </fieldset>
            </Popover.Content>
          </Popover.Portal>
        </Popover.Root>
      )}
    </div>
  );
}

function Tags({ tags, canEdit, onChange }: { tags: string[]; canEdit: boolean; onChange: (t: string[]) => void }) {
  const [draft, setDraft] = useState("");
  function add(e: FormEvent) {
    e.preventDefault();
    const t = draft.trim().toLowerCase();
    if (t && !tags.includes(t)) onChange([...tags, t]);
    setDraft("");
  }
  return (
    <div className="field">
      <span className="field-label" id="tags-label">
        Tags
      </span>
      <div className="tag-list" role="group" aria-labelledby="tags-label">
        {tags.length === 0 && <span className="muted small">None</span>}
        {tags.map((t) => (
          <span key={t} className="tag-chip">
            {t}
            {canEdit && (
              <button type="button" aria-label={`Remove tag ${t}`} onClick={() => onChange(tags.filter((x) => x !== t))}>
                ×
              </button>
            )}
          </span>
        ))}
      </div>
      {canEdit && (
        <form onSubmit={add} className="copy-row">
          <label htmlFor="tag-input" className="visually-hidden">
            New tag
          </label>
          <input id="tag-input" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Add a tag" maxLength={50} />
          <button type="submit" className="btn-small">
            Add
          </button>
        </form>
      )}
    </div>
  );
}

function Subtasks({ task, project, canEdit }: { task: Task; project: Project; canEdit: boolean }) {
  const qc = useQueryClient();
  const { toastError } = useToast();
  const [title, setTitle] = useState("");
  const subs = useQuery({
    queryKey: keys.subtasks(task.id),
    queryFn: ({ signal }) => fetchAll<Task>(`/projects/${project.id}/tasks`, { parent_id: task.id, sort: "created" }, 10, signal),
  });
  const add = useMutation({
    mutationFn: (t: string) => api<Task>(`/projects/${project.id}/tasks`, { method: "POST", body: { title: t, parent_id: task.id } }),
    onSuccess: (t) => {
      qc.setQueryData<Task[]>(keys.subtasks(task.id), (xs) => [...(xs ?? []), t]);
      void qc.invalidateQueries({ queryKey: keys.board(project.id) });
    },
    onError: (e) => toastError(e, "add the subtask"),
  });
  const done = project.statuses.find((s) => s.category === "done");
  const first = project.statuses[0];
  const toggle = useMutation({
    mutationFn: (t: Task) => api<Task>(`/tasks/${t.id}`, { method: "PATCH", version: t.version, body: { status: t.status_category === "done" ? first.id : done!.id } }),
    onMutate: (t) => {
      const prev = qc.getQueryData<Task[]>(keys.subtasks(task.id));
      const target = t.status_category === "done" ? first : done!;
      qc.setQueryData<Task[]>(keys.subtasks(task.id), (xs) => xs?.map((x) => (x.id === t.id ? { ...x, status_id: target.id, status: target.name, status_category: target.category } : x)));
      return { prev };
    },
    onError: (e, _t, ctx) => {
      qc.setQueryData(keys.subtasks(task.id), ctx?.prev);
      toastError(e, "change the subtask");
    },
    onSuccess: (t) => {
      qc.setQueryData<Task[]>(keys.subtasks(task.id), (xs) => xs?.map((x) => (x.id === t.id ? t : x)));
      void qc.invalidateQueries({ queryKey: keys.board(project.id) });
    },
  });
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    const t = title.trim();
    if (!t) return;
    setTitle("");
    add.mutate(t);
  }
  const list = subs.data ?? [];
  const doneCount = list.filter((s) => s.status_category === "done").length;
  return (
    <section aria-labelledby="subtasks-h">
      <h2 id="subtasks-h">
        Subtasks {list.length > 0 && <span className="muted small">({doneCount}/{list.length} done)</span>}
      </h2>
      {subs.isPending ? (
        <Loading />
      ) : subs.isError ? (
        <ErrorState error={subs.error} retry={() => subs.refetch()} />
      ) : (
        <ul className="subtasks">
          {list.map((s) => (
            <li key={s.id}>
              <input type="checkbox" aria-label={`${s.title}: done`} checked={s.status_category === "done"} disabled={!canEdit || !done} onChange={() => toggle.mutate(s)} />
              <Link to={`/tasks/${s.key}`}>{s.title}</Link>
              <span className="muted small">
                {s.key} · {s.status}
              </span>
            </li>
          ))}
          {list.length === 0 && <li className="muted small">No subtasks</li>}
        </ul>
      )}
      {canEdit && (
        <form onSubmit={onSubmit} className="copy-row" style={{ marginTop: "0.5rem" }}>
          <label htmlFor="subtask-input" className="visually-hidden">
            New subtask
          </label>
          <input id="subtask-input" value={title} onChange={(e) => setTitle(e.target.value)} placeholder="Add a subtask" maxLength={500} />
          <button type="submit" className="btn-small" disabled={add.isPending}>
            Add
          </button>
        </form>
      )}
    </section>
  );
}
