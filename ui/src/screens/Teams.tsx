// Teams (Owners and Admins): a named group of members and projects with a
// timezone and a schedule on which its status update is written (daily on
// working days, or weekly on a weekday, at an hour of the team's time).

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { api, ApiError, fetchAll } from "../api/client";
import { keys, useMe, useMemberLookup, useProjects } from "../api/queries";
import type { Team, TeamSchedule } from "../api/types";
import { useToast } from "../components/toast";
import { TimezoneSelect } from "../components/TimezoneSelect";
import { EmptyState, ErrorState, Field, FormError, Loading, Modal, SelectField } from "../components/ui";
import { browserTimezone, formatDateTime } from "../lib/format";

const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

export function describeSchedule(s: TeamSchedule | undefined, tz: string): string {
  if (!s || s.frequency === "off") return "No scheduled updates";
  const hour = `${String(s.hour).padStart(2, "0")}:00`;
  if (s.frequency === "daily") return `Every working day at ${hour} (${tz})`;
  return `Every ${WEEKDAYS[(s.weekday ?? 1) - 1]} at ${hour} (${tz})`;
}

export default function Teams() {
  const me = useMe();
  const { nameOf } = useMemberLookup();
  const projects = useProjects();
  const teams = useQuery({ queryKey: keys.teams, queryFn: ({ signal }) => fetchAll<Team>("/teams", {}, 10, signal) });
  const [editing, setEditing] = useState<Team | "new" | null>(null);
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  const projectName = new Map((projects.data ?? []).map((p) => [p.id, p.name]));
  useEffect(() => {
    document.title = "Teams · TeamFlow";
  }, []);
  return (
    <>
      <div className="page-header">
        <h1>Teams</h1>
        {isAdmin && (
          <button type="button" className="btn-primary" onClick={() => setEditing("new")}>
            New team
          </button>
        )}
      </div>
      <p className="muted">A team's status update covers its projects and is written on its schedule, in its timezone.</p>
      {teams.isPending ? (
        <Loading />
      ) : teams.isError ? (
        <ErrorState error={teams.error} retry={() => teams.refetch()} />
      ) : teams.data.length === 0 ? (
        <EmptyState title="No teams yet">{isAdmin && <p>Create one to get its status update on a schedule.</p>}</EmptyState>
      ) : (
        <div className="table-wrap">
          <table aria-label="Teams">
            <thead>
              <tr>
                <th scope="col">Team</th>
                <th scope="col">Members</th>
                <th scope="col" className="hide-narrow">Projects</th>
                <th scope="col">Schedule</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {teams.data.map((t) => (
                <tr key={t.id} data-team={t.name}>
                  <td>
                    <Link to={`/status-updates?team=${t.id}`}>{t.name}</Link>
                  </td>
                  <td>{(t.members ?? []).map(nameOf).join(", ") || <span className="muted">None</span>}</td>
                  <td className="hide-narrow">{(t.projects ?? []).map((p) => projectName.get(p) ?? "a project").join(", ") || <span className="muted">None</span>}</td>
                  <td className="small">
                    {describeSchedule(t.schedule, t.timezone)}
                    {t.next_run && <div className="muted">Next: {formatDateTime(t.next_run)}</div>}
                  </td>
                  <td>
                    {isAdmin && (
                      <button type="button" className="btn-small" onClick={() => setEditing(t)} aria-label={`Edit team ${t.name}`}>
                        Edit
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {editing && <TeamDialog key={editing === "new" ? "new" : editing.id} team={editing === "new" ? null : editing} onClose={() => setEditing(null)} />}
    </>
  );
}

function TeamDialog({ team, onClose }: { team: Team | null; onClose: () => void }) {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const { members } = useMemberLookup();
  const projects = useProjects();
  const [name, setName] = useState(team?.name ?? "");
  const [who, setWho] = useState<string[]>(team?.members ?? []);
  const [what, setWhat] = useState<string[]>(team?.projects ?? []);
  const [timezone, setTimezone] = useState(team?.timezone || browserTimezone());
  const [schedule, setSchedule] = useState<TeamSchedule>(team?.schedule ?? { frequency: "weekly", hour: 9, weekday: 1 });
  const save = useMutation({
    mutationFn: () => {
      const body = { name: name.trim(), members: who, projects: what, timezone, schedule: { ...schedule, weekday: schedule.weekday ?? 1 } };
      return team ? api<Team>(`/teams/${team.id}`, { method: "PATCH", version: team.version, body }) : api<Team>("/teams", { method: "POST", body });
    },
    onSuccess: (t) => {
      void qc.invalidateQueries({ queryKey: keys.teams });
      toast({ title: team ? `Saved ${t.name}` : `Created ${t.name}`, variant: "success" });
      onClose();
    },
    onError: (e) => {
      if (e instanceof ApiError && e.status === 412) void qc.invalidateQueries({ queryKey: keys.teams });
    },
  });
  const del = useMutation({
    mutationFn: () => api(`/teams/${team!.id}`, { method: "DELETE" }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.teams });
      toast({ title: `Deleted ${team!.name}` });
      onClose();
    },
    onError: (e) => toastError(e, "delete the team"),
  });
  const fe = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const toggle = (list: string[], set: (v: string[]) => void, id: string) => set(list.includes(id) ? list.filter((x) => x !== id) : [...list, id]);
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    save.mutate();
  }
  return (
    <Modal open onOpenChange={(o) => !o && onClose()} title={team ? `Edit ${team.name}` : "New team"}>
      <form onSubmit={onSubmit} noValidate>
        <FormError error={save.error} fields={["name", "timezone", "members", "projects", "schedule.hour", "schedule.weekday", "schedule.frequency"]} />
        <Field label="Team name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} error={fe.name} />
        <fieldset>
          <legend>Members</legend>
          <div className="checkbox-list">
            {members
              .filter((m) => m.status === "active" || who.includes(m.id))
              .map((m) => (
                <label key={m.id}>
                  <input type="checkbox" checked={who.includes(m.id)} onChange={() => toggle(who, setWho, m.id)} /> {m.name}
                </label>
              ))}
          </div>
          {fe.members && <span className="field-error">{fe.members}</span>}
        </fieldset>
        <fieldset>
          <legend>Projects</legend>
          <div className="checkbox-list">
            {(projects.data ?? []).map((p) => (
              <label key={p.id}>
                <input type="checkbox" checked={what.includes(p.id)} onChange={() => toggle(what, setWhat, p.id)} /> {p.name}
              </label>
            ))}
          </div>
          {fe.projects && <span className="field-error">{fe.projects}</span>}
        </fieldset>
        <TimezoneSelect value={timezone} onChange={setTimezone} error={fe.timezone} label="Team timezone" />
        <fieldset>
          <legend>Status update schedule</legend>
          <div style={{ display: "flex", gap: "1rem", flexWrap: "wrap" }}>
            <SelectField label="How often" name="frequency" value={schedule.frequency} onChange={(e) => setSchedule({ ...schedule, frequency: e.target.value as TeamSchedule["frequency"] })} error={fe["schedule.frequency"]}>
              <option value="off">Never (on request only)</option>
              <option value="daily">Every working day</option>
              <option value="weekly">Weekly</option>
            </SelectField>
            {schedule.frequency === "weekly" && (
              <SelectField label="On" name="weekday" value={schedule.weekday ?? 1} onChange={(e) => setSchedule({ ...schedule, weekday: Number(e.target.value) })} error={fe["schedule.weekday"]}>
                {WEEKDAYS.map((d, i) => (
                  <option key={d} value={i + 1}>
                    {d}
                  </option>
                ))}
              </SelectField>
            )}
            {schedule.frequency !== "off" && (
              <SelectField label="At" name="hour" value={schedule.hour} onChange={(e) => setSchedule({ ...schedule, hour: Number(e.target.value) })} error={fe["schedule.hour"]}>
                {Array.from({ length: 24 }, (_, h) => (
                  <option key={h} value={h}>
                    {String(h).padStart(2, "0")}:00
                  </option>
                ))}
              </SelectField>
            )}
          </div>
        </fieldset>
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : team ? "Save team" : "Create team"}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          {team && (
            <button type="button" className="btn-danger" onClick={() => del.mutate()} disabled={del.isPending}>
              Delete team
            </button>
          )}
        </div>
      </form>
    </Modal>
  );
}
