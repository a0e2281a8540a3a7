import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { useLocation } from "react-router";
import { api, ApiError } from "../api/client";
import { keys, useMe } from "../api/queries";
import type { Me, NotificationPrefs } from "../api/types";
import { useToast } from "../components/toast";
import { TimezoneSelect } from "../components/TimezoneSelect";
import { ErrorState, Field, FormError, Loading } from "../components/ui";
import { WorkHoursFields } from "../components/WorkHoursFields";
import { SecuritySection } from "./ProfileSecurity";

const CHANNELS: { key: Exclude<keyof NotificationPrefs, "digest">; label: string }[] = [
  { key: "mentions", label: "Someone mentions me" },
  { key: "assignments", label: "A task is assigned to me" },
  { key: "comments", label: "Comments on tasks I follow" },
  { key: "due_soon", label: "My tasks are due soon" },
  { key: "status_changes", label: "Status changes on my tasks" },
];

export default function Profile() {
  const me = useMe();
  const loc = useLocation();
  useEffect(() => {
    document.title = "Profile · TeamFlow";
  }, []);
  const loaded = !!me.data;
  useEffect(() => {
    if (loc.hash === "#security" && loaded) {
      const h = document.getElementById("security");
      h?.scrollIntoView();
      h?.focus({ preventScroll: true });
    }
  }, [loc.hash, loaded]);
  return (
    <>
      <div className="page-header">
        <h1>Your profile</h1>
      </div>
      {me.isPending ? <Loading /> : me.isError ? <ErrorState error={me.error} retry={() => me.refetch()} /> : <ProfileForm key={me.data.version} me={me.data} />}
      <PasswordForm />
      {me.data && <SecuritySection me={me.data} />}
    </>
  );
}

function ProfileForm({ me }: { me: Me }) {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const [name, setName] = useState(me.name);
  const [timezone, setTimezone] = useState(me.timezone);
  const [workHours, setWorkHours] = useState(me.work_hours);
  const [prefs, setPrefs] = useState(me.notifications);
  const save = useMutation({
    mutationFn: () => api<Me>("/me", { method: "PATCH", version: me.version, body: { name: name.trim(), timezone, work_hours: workHours, notifications: prefs } }),
    onSuccess: (m) => {
      qc.setQueryData(keys.me, m);
      void qc.invalidateQueries({ queryKey: keys.members });
      toast({ title: "Profile saved", variant: "success" });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.status === 412) {
        toastError(e);
        void qc.invalidateQueries({ queryKey: keys.me });
      }
    },
  });
  const fe = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    save.mutate();
  }
  return (
    <form onSubmit={onSubmit} noValidate className="card" style={{ maxWidth: 720 }}>
      <FormError error={save.error} fields={["name", "timezone", "work_hours"]} />
      <Field label="Name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="name" error={fe.name} />
      <Field label="Email" name="email" value={me.email} readOnly disabled hint="Ask an admin to change it" />
      <TimezoneSelect value={timezone} onChange={setTimezone} error={fe.timezone} />
      <WorkHoursFields idPrefix="me-hours" value={workHours} onChange={setWorkHours} error={fe.work_hours ?? fe["work_hours.start"] ?? fe["work_hours.end"]} />
      <fieldset>
        <legend>Notifications</legend>
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Notification channels per event</caption>
            <thead>
              <tr>
                <th scope="col">Notify me when</th>
                <th scope="col">In the app</th>
                <th scope="col">By email</th>
              </tr>
            </thead>
            <tbody>
              {CHANNELS.map((c) => (
                <tr key={c.key}>
                  <th scope="row" style={{ fontWeight: "normal", background: "none", color: "var(--text)" }}>
                    {c.label}
                  </th>
                  <td>
                    <input type="checkbox" aria-label={`${c.label}: in the app`} checked={prefs[c.key].in_app} onChange={(e) => setPrefs({ ...prefs, [c.key]: { ...prefs[c.key], in_app: e.target.checked } })} />
                  </td>
                  <td>
                    <input type="checkbox" aria-label={`${c.label}: by email`} checked={prefs[c.key].email} onChange={(e) => setPrefs({ ...prefs, [c.key]: { ...prefs[c.key], email: e.target.checked } })} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <label style={{ display: "flex", gap: "0.5rem", alignItems: "center", marginTop: "0.75rem" }}>
          <input type="checkbox" checked={prefs.digest} onChange={(e) => setPrefs({ ...prefs, digest: e.target.checked })} />
          Weekly digest email
        </label>
      </fieldset>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save profile"}
        </button>
      </div>
    </form>
  );
}

function PasswordForm() {
  const { toast } = useToast();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const change = useMutation({
    mutationFn: () => api("/me/password", { method: "POST", body: { current_password: current, new_password: next } }),
    onSuccess: () => {
      setCurrent("");
      setNext("");
      toast({ title: "Password changed", description: "Your other sessions were signed out.", variant: "success" });
    },
  });
  const fe = change.error instanceof ApiError ? change.error.fieldErrors() : {};
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    change.mutate();
  }
  return (
    <section aria-labelledby="pw-h" style={{ maxWidth: 720 }}>
      <h2 id="pw-h">Change password</h2>
      <form onSubmit={onSubmit} noValidate className="card">
        <FormError error={change.error} fields={["current_password", "new_password"]} />
        <input type="text" name="username" autoComplete="username" hidden readOnly />
        <Field label="Current password" name="current_password" type="password" value={current} onChange={(e) => setCurrent(e.target.value)} autoComplete="current-password" required error={fe.current_password} />
        <Field label="New password" name="new_password" type="password" value={next} onChange={(e) => setNext(e.target.value)} autoComplete="new-password" minLength={8} required hint="At least 8 characters; your other sessions are signed out" error={fe.new_password} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={change.isPending}>
            {change.isPending ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </section>
  );
}
