import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useLocation } from "react-router";
import { api, ApiError } from "../api/client";
import { keys, useMe, usePlan, useWorkspace } from "../api/queries";
import type { Workspace } from "../api/types";
import { useToast } from "../components/toast";
import { TimezoneSelect } from "../components/TimezoneSelect";
import { ErrorState, Field, FormError, Loading } from "../components/ui";
import { WorkHoursFields } from "../components/WorkHoursFields";
import { applyBranding, DEFAULT_ACCENT, DEFAULT_PRIMARY } from "../lib/brand";
import { checkAllowlist, checkOrigins } from "../lib/netlists";
import { formatBytes } from "../lib/upload";

export default function Settings() {
  const ws = useWorkspace();
  const me = useMe();
  const loc = useLocation();
  useEffect(() => {
    document.title = "Workspace settings · TeamFlow";
  }, []);
  useEffect(() => {
    if (loc.hash === "#plan") document.getElementById("plan")?.scrollIntoView();
  }, [loc.hash, ws.data]);
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  return (
    <>
      <div className="page-header">
        <h1>Workspace settings</h1>
      </div>
      {ws.isPending ? (
        <Loading />
      ) : ws.isError ? (
        <ErrorState error={ws.error} retry={() => ws.refetch()} />
      ) : isAdmin ? (
        <>
          <WorkspaceForm key={ws.data.version} ws={ws.data} />
          <NetworkForm key={`net-${ws.data.version}`} ws={ws.data} />
        </>
      ) : (
        <p className="notice">Only Owners and Admins change workspace settings.</p>
      )}
      <PlanUsage />
    </>
  );
}

function WorkspaceForm({ ws }: { ws: Workspace }) {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const [name, setName] = useState(ws.name);
  const [slug, setSlug] = useState(ws.slug);
  const [timezone, setTimezone] = useState(ws.timezone);
  const [workHours, setWorkHours] = useState(ws.work_hours);
  const [logo, setLogo] = useState(ws.branding.logo_url);
  const [primary, setPrimary] = useState(ws.branding.primary_color || DEFAULT_PRIMARY);
  const [accent, setAccent] = useState(ws.branding.accent_color || DEFAULT_ACCENT);
  const [grace, setGrace] = useState(String(ws.mfa_grace_days ?? 7));

  // Preview the colours live; put the saved ones back when leaving unsaved.
  useEffect(() => {
    applyBranding({ primary_color: primary, accent_color: accent });
  }, [primary, accent]);
  useEffect(() => () => applyBranding(qc.getQueryData<Workspace>(keys.workspace)?.branding), [qc]);

  const save = useMutation({
    mutationFn: () =>
      api<Workspace>("/workspace", {
        method: "PATCH",
        version: ws.version,
        body: {
          name: name.trim(),
          slug: slug.trim(),
          timezone,
          work_hours: workHours,
          branding: { logo_url: logo.trim(), primary_color: primary, accent_color: accent },
          mfa_grace_days: graceDays(grace),
        },
      }),
    onSuccess: (w) => {
      qc.setQueryData(keys.workspace, w);
      applyBranding(w.branding);
      if (w.slug !== ws.slug) localStorage.setItem("teamflow.lastWorkspace", w.slug);
      // A new grace period moves the caller's own second-factor deadline.
      if (w.mfa_grace_days !== ws.mfa_grace_days) void qc.invalidateQueries({ queryKey: keys.me });
      toast({ title: "Workspace settings saved", variant: "success" });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.status === 412) {
        toastError(e);
        void qc.invalidateQueries({ queryKey: keys.workspace });
      }
    },
  });
  const [graceError, setGraceError] = useState("");
  const fe = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (graceDays(grace) === undefined) {
      setGraceError("Enter a whole number of days from 0 to 90.");
      document.getElementById("ws-grace")?.focus();
      return;
    }
    setGraceError("");
    save.mutate();
  }
  return (
    <form onSubmit={onSubmit} noValidate className="card" style={{ maxWidth: 720 }}>
      <FormError error={save.error} fields={["name", "slug", "timezone", "work_hours", "branding.logo_url", "branding.primary_color", "branding.accent_color", "mfa_grace_days"]} />
      <div className="form-row">
        <Field label="Workspace name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} error={fe.name} />
        <Field label="Workspace address (slug)" name="slug" value={slug} onChange={(e) => setSlug(e.target.value.toLowerCase())} required maxLength={40} error={fe.slug} hint="Members type it to sign in" />
      </div>
      <TimezoneSelect value={timezone} onChange={setTimezone} error={fe.timezone} />
      <WorkHoursFields idPrefix="ws-hours" value={workHours} onChange={setWorkHours} error={fe.work_hours ?? fe["work_hours.start"] ?? fe["work_hours.end"]} />
      <fieldset>
        <legend>Branding</legend>
        <Field label="Logo URL" name="logo_url" type="url" value={logo} onChange={(e) => setLogo(e.target.value)} placeholder="https://…" hint="An https address of an image; shown in the top bar" error={fe["branding.logo_url"]} />
        <div className="form-row">
          <div className="field">
            <label htmlFor="brand-primary">Primary colour</label>
            <div className="copy-row">
              <input id="brand-primary" type="color" value={primary} onChange={(e) => setPrimary(e.target.value)} />
              <input aria-label="Primary colour (hex)" value={primary} onChange={(e) => /^#[0-9a-fA-F]{0,6}$/.test(e.target.value) && setPrimary(e.target.value)} maxLength={7} data-testid="primary-hex" />
            </div>
            {fe["branding.primary_color"] && <span className="field-error">{fe["branding.primary_color"]}</span>}
          </div>
          <div className="field">
            <label htmlFor="brand-accent">Accent colour</label>
            <div className="copy-row">
              <input id="brand-accent" type="color" value={accent} onChange={(e) => setAccent(e.target.value)} />
              <input aria-label="Accent colour (hex)" value={accent} onChange={(e) => /^#[0-9a-fA-F]{0,6}$/.test(e.target.value) && setAccent(e.target.value)} maxLength={7} />
            </div>
            {fe["branding.accent_color"] && <span className="field-error">{fe["branding.accent_color"]}</span>}
          </div>
        </div>
        <button
          type="button"
          className="btn-small"
          onClick={() => {
            setPrimary(DEFAULT_PRIMARY);
            setAccent(DEFAULT_ACCENT);
            setLogo("");
          }}
        >
          Reset to TeamFlow's colours
        </button>
      </fieldset>
      <fieldset>
        <legend>Security</legend>
        <Field
          label="Days to set up two-factor authentication"
          id="ws-grace"
          name="mfa_grace_days"
          type="number"
          inputMode="numeric"
          min={0}
          max={90}
          step={1}
          value={grace}
          onChange={(e) => setGrace(e.target.value)}
          style={{ maxWidth: 120 }}
          hint="Owners and Admins must turn on two-factor authentication within this many days of becoming one (0–90; 0: at once). Past it, they can reach only the setup until they do."
          error={graceError || fe.mfa_grace_days}
        />
      </fieldset>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save settings"}
        </button>
      </div>
    </form>
  );
}

/** The IP allowlist and the CORS origins: their own form, so a plan refusal never blocks the other settings. */
function NetworkForm({ ws }: { ws: Workspace }) {
  const qc = useQueryClient();
  const plan = usePlan();
  const { toast, toastError } = useToast();
  const [allow, setAllow] = useState((ws.ip_allowlist ?? []).join("\n"));
  const [origins, setOrigins] = useState((ws.cors_origins ?? []).join("\n"));
  const [checked, setChecked] = useState<{ allow: string[]; origins: string[] }>({ allow: [], origins: [] });
  const hasFeature = plan.data?.plan.ip_allowlist === true;
  const save = useMutation({
    mutationFn: (body: { ip_allowlist: string[]; cors_origins: string[] }) => api<Workspace>("/workspace", { method: "PATCH", version: ws.version, body }),
    onSuccess: (w) => {
      qc.setQueryData(keys.workspace, w);
      toast({ title: "Network settings saved", description: w.ip_allowlist?.length ? `Sign-in and API access are limited to ${w.ip_allowlist.length} network${w.ip_allowlist.length === 1 ? "" : "s"}.` : undefined, variant: "success" });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.status === 412) {
        toastError(e);
        void qc.invalidateQueries({ queryKey: keys.workspace });
      }
    },
  });
  const fe = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    const a = checkAllowlist(allow);
    const o = checkOrigins(origins);
    setChecked({ allow: a.errors, origins: o.errors });
    if (a.errors.length) return document.getElementById("ws-allowlist")?.focus();
    if (o.errors.length) return document.getElementById("ws-origins")?.focus();
    save.mutate({ ip_allowlist: a.values, cors_origins: o.values });
  }
  const allowError = checked.allow.join(" · ") || fe.ip_allowlist || Object.entries(fe).find(([k]) => k.startsWith("ip_allowlist["))?.[1];
  const originsError = checked.origins.join(" · ") || fe.cors_origins || Object.entries(fe).find(([k]) => k.startsWith("cors_origins["))?.[1];
  const planRefused = save.error instanceof ApiError && save.error.isPlanFeature;
  return (
    <form onSubmit={onSubmit} noValidate className="card" style={{ maxWidth: 720, marginTop: "1rem" }} aria-labelledby="network-h" data-testid="network-form">
      <h2 id="network-h" style={{ marginTop: 0 }}>
        Network access
      </h2>
      {planRefused ? (
        <div className="notice notice-warn" role="alert">
          {(save.error as ApiError).message} <Link to="/settings#plan">See the plan</Link>
        </div>
      ) : (
        <FormError error={save.error} fields={["ip_allowlist", "cors_origins"]} />
      )}
      <div className="field">
        <label htmlFor="ws-allowlist">Allowed networks (IP allowlist)</label>
        <textarea
          id="ws-allowlist"
          className="list-input"
          value={allow}
          onChange={(e) => setAllow(e.target.value)}
          readOnly={plan.isSuccess && !hasFeature && !allow}
          placeholder={"203.0.113.0/24\n2001:db8::/32"}
          spellCheck={false}
          aria-invalid={allowError ? true : undefined}
          aria-describedby={`ws-allowlist-hint${allowError ? " ws-allowlist-error" : ""}`}
        />
        <span id="ws-allowlist-hint" className="field-hint">
          Addresses or CIDRs, one a line. When the list is not empty, sign-in and API access work only from these networks; it must include the address you are
          connecting from. Empty: any address.
          {plan.isSuccess && !hasFeature && ` IP allowlisting is not part of the ${plan.data.plan.name} plan.`}
        </span>
        {allowError && (
          <span id="ws-allowlist-error" className="field-error" role="alert">
            {allowError}
          </span>
        )}
      </div>
      <div className="field">
        <label htmlFor="ws-origins">Allowed web origins (CORS)</label>
        <textarea
          id="ws-origins"
          className="list-input"
          value={origins}
          onChange={(e) => setOrigins(e.target.value)}
          placeholder="https://app.example.com"
          spellCheck={false}
          aria-invalid={originsError ? true : undefined}
          aria-describedby={`ws-origins-hint${originsError ? " ws-origins-error" : ""}`}
        />
        <span id="ws-origins-hint" className="field-hint">
          Web pages on these origins (https, one a line) may call the API with this workspace's API keys or bearer tokens. Sign-in cookies never leave this site.
        </span>
        {originsError && (
          <span id="ws-origins-error" className="field-error" role="alert">
            {originsError}
          </span>
        )}
      </div>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save network settings"}
        </button>
      </div>
    </form>
  );
}

/** The grace-period input as the API's integer (0–90), or undefined when it is not one. */
export function graceDays(v: string): number | undefined {
  const t = v.trim();
  if (!/^\d{1,2}$/.test(t)) return undefined;
  const n = Number(t);
  return n <= 90 ? n : undefined;
}

function limit(n: number): string {
  return n < 0 ? "unlimited" : String(n);
}

function PlanUsage() {
  const plan = usePlan();
  return (
    <section aria-labelledby="plan" style={{ maxWidth: 720 }}>
      <h2 id="plan" tabIndex={-1}>
        Plan and usage
      </h2>
      {plan.isPending ? (
        <Loading />
      ) : plan.isError ? (
        <ErrorState error={plan.error} retry={() => plan.refetch()} />
      ) : (
        <div className="card">
          <p>
            This workspace is on the <strong>{plan.data.plan.name}</strong> plan.
          </p>
          <div className="usage">
            <Usage label="Members" used={plan.data.users} max={plan.data.plan.max_users} />
            <Usage label="Projects" used={plan.data.projects} max={plan.data.plan.max_projects} />
          </div>
          {plan.data.storage_used !== undefined && (
            <p className="small">
              File storage: {formatBytes(plan.data.storage_used)} used
              {plan.data.storage_quota !== undefined && plan.data.storage_quota >= 0 ? ` of ${formatBytes(plan.data.storage_quota)}` : " (unlimited)"}
            </p>
          )}
          <ul className="small muted">
            <li>Activity history: {plan.data.plan.history_days < 0 ? "unlimited" : `${plan.data.plan.history_days} days`}</li>
            <li>Custom workflows: {plan.data.plan.custom_workflows ? "yes" : "no"}</li>
            <li>Single sign-on: {plan.data.plan.sso ? "yes" : "no"}</li>
            {plan.data.plan.audit_log !== undefined && <li>Audit log: {plan.data.plan.audit_log ? "yes" : "no"}</li>}
            {plan.data.plan.audit_export !== undefined && <li>Audit log export: {plan.data.plan.audit_export ? "yes" : "no"}</li>}
            {plan.data.plan.ip_allowlist !== undefined && <li>IP allowlisting: {plan.data.plan.ip_allowlist ? "yes" : "no"}</li>}
            <li>Integrations: {limit(plan.data.plan.integrations)}</li>
          </ul>
          <p className="small">To change the plan, contact whoever runs this TeamFlow installation (the platform operator).</p>
        </div>
      )}
    </section>
  );
}

function Usage({ label, used, max }: { label: string; used: number; max: number }) {
  const pct = max > 0 ? Math.min(100, Math.round((used / max) * 100)) : 0;
  const id = `usage-${label}`;
  return (
    <div>
      <div id={id}>
        {label}: {used} of {limit(max)}
      </div>
      {max > 0 && (
        <div className="progress" role="progressbar" aria-labelledby={id} aria-valuemin={0} aria-valuemax={max} aria-valuenow={used}>
          <span style={{ width: `${pct}%` }} />
        </div>
      )}
    </div>
  );
}
