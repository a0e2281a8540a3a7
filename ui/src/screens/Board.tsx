// The kanban board: one column per status, cards in position order. Cards move
// by pointer or keyboard (dnd-kit: focus a card's handle, Space to lift,
// arrows to move, Space to drop, Escape to cancel). A drop is one PATCH
// {status, move: {after_id}}, applied optimistically and rolled back on error.

import {
  closestCorners,
  DndContext,
  DragOverlay,
  KeyboardSensor,
  PointerSensor,
  useDroppable,
  useSensor,
  useSensors,
  type Announcements,
  type DragEndEvent,
  type DragOverEvent,
  type DragStartEvent,
  type KeyboardCoordinateGetter,
} from "@dnd-kit/core";
import { arrayMove, SortableContext, sortableKeyboardCoordinates, useSortable, verticalListSortingStrategy } from "@dnd-kit/sortable";
import { CSS } from "@dnd-kit/utilities";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import React, { memo, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { api, ApiError } from "../api/client";
import { keys, useMemberLookup } from "../api/queries";
import type { Member, Project, Status, Task } from "../api/types";
import { useToast } from "../components/toast";
import { Avatar, ErrorState, Loading, PriorityBadge } from "../components/ui";
import { afterIdFor, applyMove, findColumn, type Columns } from "../lib/board";
import { loadBoard } from "../lib/boardData";
import { formatDue, isOverdue } from "../lib/format";
import { useLive } from "../lib/live";
import { useProjectContext } from "./ProjectFrame";

const COL_PREFIX = "col:";
const CARD_PAGE = 50;

export default function Board() {
  const project = useProjectContext();
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const { byId } = useMemberLookup();
  useLive({ kind: "project", id: project.id });
  const canEdit = project.role !== "observer";
  const onAdded = useCallback((t: Task) => toast({ title: `Added ${t.key}`, variant: "success" }), [toast]);

  const board = useQuery({
    queryKey: keys.board(project.id),
    queryFn: ({ signal }) => loadBoard(project, signal),
  });

  // While a drag is in flight the board shows its own copy of the columns.
  const [dragCols, setDragCols] = useState<Columns | null>(null);
  const [activeId, setActiveId] = useState<string | null>(null);
  const snapshot = useRef<Columns | null>(null);
  const cols = dragCols ?? board.data;

  const statusById = useMemo(() => new Map(project.statuses.map((s) => [s.id, s])), [project.statuses]);

  const move = useMutation({
    mutationFn: (v: { task: Task; toStatus: string; afterId: string }) =>
      api<Task>(`/tasks/${v.task.id}`, {
        method: "PATCH",
        version: v.task.version,
        body: { ...(v.toStatus !== v.task.status_id ? { status: v.toStatus } : {}), move: { after_id: v.afterId } },
      }),
    onError: (err) => {
      if (snapshot.current) qc.setQueryData(keys.board(project.id), snapshot.current);
      toastError(err, "move the card");
      if (err instanceof ApiError && (err.status === 412 || err.status === 409 || err.status === 422)) void qc.invalidateQueries({ queryKey: keys.board(project.id) });
    },
    onSuccess: (t) => {
      qc.setQueryData<Columns>(keys.board(project.id), (c) => (c ? replaceTask(c, t) : c));
      qc.setQueryData(keys.task(t.id), (old: Task | undefined) => (old ? { ...old, ...t, description_html: old.description_html } : old));
      void qc.invalidateQueries({ queryKey: ["tasks", project.id] });
    },
  });

  // Left and right arrows jump a lifted card to the top of the neighbouring
  // column; up and down move it within a column (dnd-kit's sortable getter).
  const colsRef = useRef<Columns | undefined>(undefined);
  colsRef.current = cols;
  const statusOrder = useMemo(() => project.statuses.map((s) => s.id), [project.statuses]);
  const coordinateGetter: KeyboardCoordinateGetter = useCallback(
    (event, args) => {
      if (event.code !== "ArrowRight" && event.code !== "ArrowLeft") return sortableKeyboardCoordinates(event, args);
      event.preventDefault();
      const { active, droppableRects } = args.context;
      const c = colsRef.current;
      if (!active || !c) return undefined;
      const from = findColumn(c, String(active.id));
      const next = statusOrder[statusOrder.indexOf(from ?? "") + (event.code === "ArrowRight" ? 1 : -1)];
      const rect = next ? droppableRects.get(COL_PREFIX + next) : undefined;
      if (!rect) return undefined;
      return { x: rect.left + 8, y: rect.top };
    },
    [statusOrder],
  );
  const sensors = useSensors(
    useSensor(PointerSensor, { activationConstraint: { distance: 5 } }),
    useSensor(KeyboardSensor, { coordinateGetter }),
  );

  const containerOf = useCallback(
    (c: Columns, id: string): string | undefined => (id.startsWith(COL_PREFIX) ? id.slice(COL_PREFIX.length) : findColumn(c, id)),
    [],
  );

  function onDragStart(e: DragStartEvent) {
    if (!board.data) return;
    snapshot.current = board.data;
    setDragCols(board.data);
    setActiveId(String(e.active.id));
  }

  function onDragOver(e: DragOverEvent) {
    const over = e.over ? String(e.over.id) : null;
    if (!over) return;
    setDragCols((c) => {
      if (!c) return c;
      const active = String(e.active.id);
      const from = containerOf(c, active);
      const to = containerOf(c, over);
      if (!from || !to || from === to) return c;
      const overIndex = over.startsWith(COL_PREFIX) ? c[to].length : c[to].findIndex((t) => t.id === over);
      const st = statusById.get(to);
      return applyMove(c, { taskId: active, toStatus: to, toIndex: overIndex < 0 ? c[to].length : overIndex }, st?.name, st?.category) ?? c;
    });
  }

  function finish(final: Columns | null, taskId: string) {
    setActiveId(null);
    setDragCols(null);
    const before = snapshot.current;
    if (!final || !before) return;
    const fromStatus = findColumn(before, taskId);
    const toStatus = findColumn(final, taskId);
    if (!fromStatus || !toStatus) return;
    const toIndex = final[toStatus].findIndex((t) => t.id === taskId);
    const fromIndex = before[fromStatus].findIndex((t) => t.id === taskId);
    if (fromStatus === toStatus && fromIndex === toIndex) return;
    const task = before[fromStatus][fromIndex];
    const afterId = afterIdFor(final, { taskId, toStatus, toIndex });
    qc.setQueryData(keys.board(project.id), final);
    move.mutate({ task, toStatus, afterId });
  }

  function onDragEnd(e: DragEndEvent) {
    const active = String(e.active.id);
    const over = e.over ? String(e.over.id) : null;
    let c = dragCols;
    if (c && over) {
      const from = containerOf(c, active);
      const to = containerOf(c, over);
      if (from && to && from === to && !over.startsWith(COL_PREFIX)) {
        const oldIndex = c[from].findIndex((t) => t.id === active);
        const newIndex = c[to].findIndex((t) => t.id === over);
        if (oldIndex !== newIndex && newIndex >= 0) c = { ...c, [from]: arrayMove(c[from], oldIndex, newIndex) };
      }
    }
    finish(over ? c : null, active);
  }

  function onDragCancel() {
    setActiveId(null);
    setDragCols(null);
  }

  const titleOf = (id: string | number) => {
    const sid = String(id);
    if (sid.startsWith(COL_PREFIX)) return `column ${statusById.get(sid.slice(COL_PREFIX.length))?.name ?? ""}`;
    for (const list of Object.values(cols ?? {})) {
      const t = list.find((x) => x.id === sid);
      if (t) return `${t.key} ${t.title}`;
    }
    return "card";
  };
  // Where the active card would land when dropped on over (a card or a column).
  const placeOf = (activeId: string | number, overId: string | number = activeId) => {
    const c = colsRef.current;
    if (!c) return "";
    const sid = String(overId);
    const col = containerOf(c, sid);
    if (!col) return "";
    const list = c[col];
    const has = list.some((t) => t.id === String(activeId));
    const i = sid.startsWith(COL_PREFIX) ? list.length - (has ? 1 : 0) : list.findIndex((t) => t.id === sid);
    return `${statusById.get(col)?.name ?? ""}, position ${i + 1} of ${list.length + (has ? 0 : 1)}`;
  };
  const announcements: Announcements = {
    onDragStart: ({ active }) => `Picked up ${titleOf(active.id)}. It is in ${placeOf(active.id)}.`,
    onDragOver: ({ active, over }) =>
      over ? (over.id === active.id ? undefined : `${titleOf(active.id)} is now in ${placeOf(active.id, over.id)}.`) : `${titleOf(active.id)} is no longer over a column.`,
    onDragEnd: ({ active, over }) => (over ? `Dropped ${titleOf(active.id)} in ${placeOf(active.id)}.` : `Dropped ${titleOf(active.id)}; it stays where it was.`),
    onDragCancel: ({ active }) => `Cancelled. ${titleOf(active.id)} went back to where it was.`,
  };

  const navigate = useNavigate();
  const routeClick = useCallback(
    (e: React.MouseEvent) => {
      const a = (e.target as HTMLElement).closest("a[data-route]");
      if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(a.getAttribute("href")!);
    },
    [navigate],
  );

  if (board.isPending) return <Loading label="Loading the board…" />;
  if (board.isError) return <ErrorState error={board.error} retry={() => board.refetch()} />;
  const activeTask = activeId && cols ? Object.values(cols).flat().find((t) => t.id === activeId) : undefined;
  const total = Object.values(board.data).reduce((n, l) => n + l.length, 0);

  return (
    <>
      <p className="visually-hidden" id="board-help">
        To move a card with the keyboard, focus its handle, press Space to lift it, use the arrow keys to move it within and between columns, then Space to drop or Escape to cancel.
      </p>
      <DndContext
        sensors={canEdit ? sensors : []}
        collisionDetection={closestCorners}
        onDragStart={onDragStart}
        onDragOver={onDragOver}
        onDragEnd={onDragEnd}
        onDragCancel={onDragCancel}
        accessibility={{ announcements, screenReaderInstructions: { draggable: "Press Space to lift the card. Arrow keys move it, Space drops it, Escape cancels." } }}
      >
        <div className="board" data-testid="board" data-total={total} aria-describedby="board-help" onClick={routeClick}>
          {project.statuses.map((s) => (
            <BoardColumn key={s.id} project={project} status={s} tasks={cols?.[s.id] ?? []} byId={byId} canEdit={canEdit} onAdded={onAdded} />
          ))}
        </div>
        <DragOverlay>{activeTask ? <CardBody task={activeTask} byId={byId} overlay /> : null}</DragOverlay>
      </DndContext>
    </>
  );
}

function replaceTask(c: Columns, t: Task): Columns {
  const out: Columns = {};
  for (const [k, list] of Object.entries(c)) out[k] = list.map((x) => (x.id === t.id ? t : x));
  return out;
}

const BoardColumn = memo(function BoardColumn({
  project,
  status,
  tasks,
  byId,
  canEdit,
  onAdded,
}: {
  project: Project;
  status: Status;
  tasks: Task[];
  byId: Map<string, Member>;
  canEdit: boolean;
  onAdded: (t: Task) => void;
}) {
  const { setNodeRef, isOver } = useDroppable({ id: COL_PREFIX + status.id });
  // Long columns render their cards a page at a time (more as the column is
  // scrolled, or on "Show more"): a 500-card board stays quick to open and to drag on.
  const [shown, setShown] = useState(CARD_PAGE);
  const prevLength = useRef(tasks.length);
  useEffect(() => {
    // A card added to (or dropped at the end of) a fully shown column stays in view.
    if (tasks.length > prevLength.current && prevLength.current <= shown) setShown((n) => Math.max(n, tasks.length));
    prevLength.current = tasks.length;
  }, [tasks.length, shown]);
  const visible = tasks.length > shown ? tasks.slice(0, shown) : tasks;
  const hidden = tasks.length - visible.length;
  const ids = useMemo(() => visible.map((t) => t.id), [visible]);
  const sentinel = useRef<HTMLLIElement>(null);
  useEffect(() => {
    const el = sentinel.current;
    if (!el || typeof IntersectionObserver === "undefined") return;
    const io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && setShown((n) => n + CARD_PAGE), { root: el.parentElement, rootMargin: "300px" });
    io.observe(el);
    return () => io.disconnect();
  }, [hidden > 0, shown]);
  const headingId = `col-${status.id}`;
  return (
    <section className="column" aria-labelledby={headingId} data-status={status.name} data-count={tasks.length} data-shown={visible.length}>
      <div className="column-header">
        <h2 id={headingId} style={{ margin: 0, fontSize: "1rem" }}>
          {status.name}
        </h2>
        <span className="badge">
          {tasks.length}
          <span className="visually-hidden"> tasks</span>
        </span>
      </div>
      <SortableContext id={status.id} items={ids} strategy={verticalListSortingStrategy}>
        <ul ref={setNodeRef} className={`column-body${isOver ? " is-over" : ""}`} style={{ listStyle: "none", margin: 0 }} aria-labelledby={headingId}>
          {visible.map((t) => (
            <SortableCard key={t.id} task={t} byId={byId} disabled={!canEdit || t.id.startsWith("temp-")} />
          ))}
          {hidden > 0 && (
            <li ref={sentinel} className="show-more">
              <button type="button" className="btn-small" onClick={() => setShown((n) => n + CARD_PAGE)}>
                Show {Math.min(CARD_PAGE, hidden)} more <span className="visually-hidden">in {status.name}</span> ({hidden} not shown)
              </button>
            </li>
          )}
          {tasks.length === 0 && <li className="muted small" style={{ padding: "0.5rem" }}>No tasks</li>}
        </ul>
      </SortableContext>
      {canEdit && <QuickAdd project={project} status={status} onAdded={onAdded} />}
    </section>
  );
});

const SortableCard = memo(function SortableCard({ task, byId, disabled }: { task: Task; byId: Map<string, Member>; disabled: boolean }) {
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, transition, isDragging } = useSortable({ id: task.id, disabled });
  const style = { transform: CSS.Translate.toString(transform), transition };
  return (
    <li ref={setNodeRef} style={style} className={`task-card${isDragging ? " dragging" : ""}`} data-task-id={task.id} data-key={task.key} onPointerDown={listeners?.onPointerDown as React.PointerEventHandler<HTMLLIElement> | undefined}>
      <button
        type="button"
        ref={setActivatorNodeRef}
        className="drag-handle"
        {...attributes}
        onKeyDown={listeners?.onKeyDown as React.KeyboardEventHandler<HTMLButtonElement> | undefined}
        aria-label={`Move ${task.key}: ${task.title}`}
        aria-describedby="board-help"
      >
        <span aria-hidden="true">⠿</span>
      </button>
      <CardContent task={task} byId={byId} />
    </li>
  );
});

// Memoised apart from the sortable wrapper: during a drag dnd-kit re-renders
// every sortable item, and this keeps that to the wrapper alone.
const CardContent = memo(function CardContent({ task, byId }: { task: Task; byId: Map<string, Member> }) {
  const overdue = task.status_category !== "done" && isOverdue(task.due);
  return (
    <>
      {/* A plain link (the board's click handler routes it in-app): hundreds of router Links cost too much to render. */}
      <a className="card-title" href={`/tasks/${task.key}`} draggable={false} data-route>
        {task.title}
      </a>
      <div className="card-meta">
        <span>{task.key}</span>
        <PriorityBadge priority={task.priority} />
        {task.due && <span className={overdue ? "overdue" : undefined}>{overdue ? "Overdue " : "Due "}{formatDue(task.due)}</span>}
        {task.tags.slice(0, 3).map((t) => (
          <span key={t} className="badge">
            {t}
          </span>
        ))}
        {task.assignees.length > 0 && (
          <span className="avatar-stack">
            {task.assignees.slice(0, 3).map((a) => (
              <Avatar key={a} name={byId.get(a)?.name ?? "?"} />
            ))}
            <span className="visually-hidden">Assigned to {task.assignees.map((a) => byId.get(a)?.name ?? "someone").join(", ")}</span>
          </span>
        )}
      </div>
    </>
  );
});

function CardBody({ task, byId, overlay }: { task: Task; byId: Map<string, Member>; overlay?: boolean }) {
  return (
    <div className={`task-card${overlay ? " overlay" : ""}`} aria-hidden="true">
      <span className="drag-handle">⠿</span>
      <CardContent task={task} byId={byId} />
    </div>
  );
}

function QuickAdd({ project, status, onAdded }: { project: Project; status: Status; onAdded: (t: Task) => void }) {
  const qc = useQueryClient();
  const { toastError } = useToast();
  const [title, setTitle] = useState("");
  const inputRef = useRef<HTMLInputElement>(null);
  const add = useMutation({
    mutationFn: (t: string) => api<Task>(`/projects/${project.id}/tasks`, { method: "POST", body: { title: t, status: status.id } }),
    onMutate: async (t) => {
      await qc.cancelQueries({ queryKey: keys.board(project.id) });
      const prev = qc.getQueryData<Columns>(keys.board(project.id));
      const temp: Task = {
        id: `temp-${Date.now()}`, project_id: project.id, number: 0, key: "…", title: t, description: "", status: status.name, status_id: status.id,
        status_category: status.category, assignees: [], due: null, priority: "none", tags: [], parent_id: null, position: "~", created_by: "", created_at: new Date().toISOString(),
        updated_by: "", updated_at: new Date().toISOString(), version: 0,
      };
      qc.setQueryData<Columns>(keys.board(project.id), (c) => (c ? { ...c, [status.id]: [...(c[status.id] ?? []), temp] } : c));
      return { prev, tempId: temp.id };
    },
    onError: (err, _t, ctx) => {
      if (ctx?.prev) qc.setQueryData(keys.board(project.id), ctx.prev);
      toastError(err, "add the task");
    },
    onSuccess: (task, _t, ctx) => {
      qc.setQueryData<Columns>(keys.board(project.id), (c) => (c ? { ...c, [status.id]: (c[status.id] ?? []).map((x) => (x.id === ctx?.tempId ? task : x)) } : c));
      void qc.invalidateQueries({ queryKey: ["tasks", project.id] });
      void qc.invalidateQueries({ queryKey: keys.onboarding });
      onAdded(task);
    },
  });
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    const t = title.trim();
    if (!t) return;
    setTitle("");
    add.mutate(t);
  }
  const id = `quick-add-${status.id}`;
  return (
    <form className="quick-add" onSubmit={onSubmit}>
      <label htmlFor={id} className="visually-hidden">
        Add a task to {status.name}
      </label>
      <input id={id} ref={inputRef} value={title} onChange={(e) => setTitle(e.target.value)} placeholder="+ Add a task" maxLength={500} autoComplete="off" />
    </form>
  );
}
