// The profile's Security section: two-factor authentication, the sessions
// signed in to this account, and personal API keys.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type FormEvent } from "react";
import { api, ApiError } from "../api/client";
import { keys, useProjects, useWorkspace } from "../api/queries";
import type { ApiKey, ApiScope, Me, SessionInfo } from "../api/types";
import { useToast } from "../components/toast";
import { RegenerateRecoveryCodes, TwoFactorDisable, TwoFactorEnrol, useCopy } from "../components/TwoFactor";
import { EmptyState, ErrorState, Field, FormError, Loading, Modal } from "../components/ui";
import { formatDateTime, plural, timeAgo } from "../lib/format";
import { describeScopes, describeSignInMethod, describeUserAgent, expiresAtFromDate, mfaState } from "../lib/security";

export function SecuritySection({ me }: { me: Me }) {
  return (
    <section aria-labelledby="security" className="security" style={{ maxWidth: 720 }}>
      <h2 id="security" tabIndex={-1}>
        Security
      </h2>
      <TwoFactorCard me={me} />
      <SessionsCard />
      <ApiKeysCard />
    </section>
  );
}

function TwoFactorCard({ me }: { me: Me }) {
  const ws = useWorkspace();
  const qc = useQueryClient();
  const [mode, setMode] = useState<"idle" | "enrol" | "disable" | "recovery">("idle");
  const state = mfaState(me);
  return (
    <div className="card security-card" aria-labelledby="mfa-h" role="group">
      <div className="card-head">
        <h3 id="mfa-h">Two-factor authentication</h3>
        {state.kind === "enabled" ? <span className="badge badge-ok">On</span> : <span className="badge">Off</span>}
      </div>
      {mode === "enrol" ? (
        <TwoFactorEnrol
          me={me}
          workspaceName={ws.data?.name ?? "TeamFlow"}
          onCancel={() => setMode("idle")}
          onDone={() => {
            setMode("idle");
            void qc.invalidateQueries({ queryKey: keys.me });
          }}
        />
      ) : state.kind === "enabled" ? (
        <>
          <p>Signing in asks for a code from your authenticator app, or one of your recovery codes.</p>
          {me.recovery_codes_remaining !== undefined && (
            <p className={me.recovery_codes_remaining <= 2 ? "notice notice-warn" : "small muted"} data-testid="recovery-remaining">
              {me.recovery_codes_remaining === 0
                ? "You have no unused recovery codes left: make new ones."
                : `${plural(me.recovery_codes_remaining, "unused recovery code")} left.`}
            </p>
          )}
          <div className="form-actions">
            <button type="button" onClick={() => setMode("recovery")}>
              Make new recovery codes
            </button>
            <button type="button" className="btn-danger" onClick={() => setMode("disable")}>
              Turn off two-factor authentication
            </button>
          </div>
        </>
      ) : (
        <>
          <p>Protect your account with a code from an authenticator app at every sign-in, in addition to your password.</p>
          {state.kind !== "optional" && (
            <p className="notice notice-warn">
              Required for Owners and Admins{state.kind === "grace" ? ` from ${formatDateTime(state.deadline.toISOString())}` : ""}.
            </p>
          )}
          <div className="form-actions">
            <button type="button" className="btn-primary" onClick={() => setMode("enrol")}>
              Set up two-factor authentication
            </button>
          </div>
        </>
      )}
      <Modal open={mode === "disable"} onOpenChange={(o) => !o && setMode("idle")} title="Turn off two-factor authentication?" description="Confirm with your password and a current code. Your recovery codes stop working too.">
        <TwoFactorDisable me={me} graceDays={ws.data?.mfa_grace_days} onDone={() => setMode("idle")} onCancel={() => setMode("idle")} />
      </Modal>
      <Modal
        open={mode === "recovery"}
        onOpenChange={(o) => !o && setMode("idle")}
        title="Make new recovery codes"
        description="Confirm it's you. The new codes replace all the old ones, used or not, and are shown only once."
      >
        <RegenerateRecoveryCodes me={me} workspaceName={ws.data?.name ?? "TeamFlow"} onDone={() => setMode("idle")} onCancel={() => setMode("idle")} />
      </Modal>
    </div>
  );
}

function SessionsCard() {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const [confirmOthers, setConfirmOthers] = useState(false);
  const sessions = useQuery({ queryKey: keys.sessions, queryFn: ({ signal }) => api<{ items: SessionInfo[] }>("/me/sessions", { signal }).then((r) => r.items), staleTime: 10_000 });
  const revoke = useMutation({
    mutationFn: (s: SessionInfo) => api(`/me/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" }),
    onMutate: async (s) => {
      await qc.cancelQueries({ queryKey: keys.sessions });
      const prev = qc.getQueryData<SessionInfo[]>(keys.sessions);
      qc.setQueryData<SessionInfo[]>(keys.sessions, (xs) => xs?.filter((x) => x.id !== s.id));
      return { prev };
    },
    onError: (e, _s, ctx) => {
      qc.setQueryData(keys.sessions, ctx?.prev);
      toastError(e, "sign out that session");
    },
    onSuccess: (_r, s) => toast({ variant: "success", title: "Session signed out", description: `${describeUserAgent(s.user_agent)} (${s.ip || "unknown address"}) is signed out.` }),
    onSettled: () => void qc.invalidateQueries({ queryKey: keys.sessions }),
  });
  const others = useMutation({
    mutationFn: () => api("/me/sessions/revoke-others", { method: "POST" }),
    onSuccess: () => {
      const n = (sessions.data ?? []).filter((s) => !s.current).length;
      toast({ variant: "success", title: "Other sessions signed out", description: `${plural(n, "session")} ended; this one stays.` });
    },
    onError: (e) => toastError(e, "sign out the other sessions"),
    onSettled: () => void qc.invalidateQueries({ queryKey: keys.sessions }),
  });
  const list = sessions.data ?? [];
  const otherCount = list.filter((s) => !s.current).length;
  return (
    <div className="card security-card" aria-labelledby="sessions-h" role="group">
      <div className="card-head">
        <h3 id="sessions-h">Where you're signed in</h3>
        <button type="button" className="btn-small" disabled={otherCount === 0 || others.isPending} onClick={() => setConfirmOthers(true)}>
          Sign out other sessions
        </button>
      </div>
      {sessions.isPending ? (
        <Loading label="Loading sessions…" />
      ) : sessions.isError ? (
        <ErrorState error={sessions.error} retry={() => sessions.refetch()} />
      ) : list.length === 0 ? (
        <EmptyState title="No active sessions" />
      ) : (
        <div className="table-wrap">
          <table aria-label="Your sessions">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col" className="hide-narrow">
                  Signed in with
                </th>
                <th scope="col">Last active</th>
                <th scope="col" className="hide-narrow">
                  IP address
                </th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((s) => {
                const device = describeUserAgent(s.user_agent);
                return (
                  <tr key={s.id} data-session-id={s.id} data-current={s.current}>
                    <td>
                      <span title={s.user_agent}>{device}</span> {s.current && <span className="badge badge-ok">This device</span>}
                      <div className="small muted">Since {formatDateTime(s.created_at)}</div>
                    </td>
                    <td className="hide-narrow small">{describeSignInMethod(s.method)}</td>
                    <td className="small">
                      <time dateTime={s.last_seen_at} title={formatDateTime(s.last_seen_at)}>
                        {s.current ? "Now" : timeAgo(s.last_seen_at)}
                      </time>
                    </td>
                    <td className="hide-narrow small mono">{s.ip || "—"}</td>
                    <td>
                      {!s.current && (
                        <button type="button" className="btn-small btn-danger" disabled={revoke.isPending} onClick={() => revoke.mutate(s)} aria-label={`Sign out ${device}, last active ${timeAgo(s.last_seen_at)}`}>
                          Sign out
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <Modal open={confirmOthers} onOpenChange={setConfirmOthers} title="Sign out your other sessions?" description={`${plural(otherCount, "other session")} will end at once: every browser and device but this one must sign in again.`}>
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              setConfirmOthers(false);
              others.mutate();
            }}
          >
            Sign out other sessions
          </button>
          <button type="button" onClick={() => setConfirmOthers(false)}>
            Cancel
          </button>
        </div>
      </Modal>
    </div>
  );
}

function ApiKeysCard() {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const projects = useProjects();
  const list = useQuery({ queryKey: keys.apiKeys, queryFn: ({ signal }) => api<{ items: ApiKey[] }>("/api-keys", { signal }).then((r) => r.items), staleTime: 30_000 });
  const revoke = useMutation({
    mutationFn: (k: ApiKey) => api(`/api-keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }),
    onSuccess: (_r, k) => toast({ variant: "success", title: `API key “${k.name}” revoked` }),
    onError: (e) => toastError(e, "revoke the key"),
    onSettled: () => void qc.invalidateQueries({ queryKey: keys.apiKeys }),
  });
  const projectName = (id: string) => projects.data?.find((p) => p.id === id)?.name ?? "a project";
  const items = list.data ?? [];
  return (
    <div className="card security-card" aria-labelledby="keys-h" role="group">
      <div className="card-head">
        <h3 id="keys-h">API keys</h3>
        <button type="button" className="btn-small" onClick={() => setCreating(true)}>
          Create API key
        </button>
      </div>
      <p className="small muted">
        Personal keys let scripts and integrations use the API as you: send one as <code>Authorization: Bearer &lt;key&gt;</code>. A key can do at most what you can.
      </p>
      {list.isPending ? (
        <Loading label="Loading API keys…" />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : items.length === 0 ? (
        <EmptyState title="No API keys yet" />
      ) : (
        <div className="table-wrap">
          <table aria-label="Your API keys">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Access</th>
                <th scope="col" className="hide-narrow">
                  Projects
                </th>
                <th scope="col" className="hide-narrow">
                  Last used
                </th>
                <th scope="col" className="hide-narrow">
                  Expires
                </th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((k) => {
                const expired = k.expires_at ? new Date(k.expires_at).getTime() < Date.now() : false;
                return (
                  <tr key={k.id} data-key-name={k.name}>
                    <td>
                      {k.name}
                      <div className="small muted">Created {formatDateTime(k.created_at)}</div>
                    </td>
                    <td>{describeScopes(k)}</td>
                    <td className="hide-narrow small">{k.projects && k.projects.length ? k.projects.map(projectName).join(", ") : "All"}</td>
                    <td className="hide-narrow small">{k.last_used_at ? timeAgo(k.last_used_at) : "Never"}</td>
                    <td className="hide-narrow small">{k.expires_at ? <span className={expired ? "overdue" : undefined}>{expired ? "Expired " : ""}{formatDateTime(k.expires_at)}</span> : "Never"}</td>
                    <td>
                      <button type="button" className="btn-small btn-danger" onClick={() => setRevoking(k)} aria-label={`Revoke the API key ${k.name}`}>
                        Revoke
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <Modal open={creating} onOpenChange={setCreating} title="Create an API key">
        <CreateApiKey onClose={() => setCreating(false)} />
      </Modal>
      <Modal open={!!revoking} onOpenChange={(o) => !o && setRevoking(null)} title={`Revoke “${revoking?.name ?? ""}”?`} description="Anything using this key stops working at once. This cannot be undone.">
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              if (revoking) revoke.mutate(revoking);
              setRevoking(null);
            }}
          >
            Revoke key
          </button>
          <button type="button" onClick={() => setRevoking(null)}>
            Cancel
          </button>
        </div>
      </Modal>
    </div>
  );
}

function CreateApiKey({ onClose }: { onClose: () => void }) {
  const qc = useQueryClient();
  const projects = useProjects();
  const [name, setName] = useState("");
  const [access, setAccess] = useState<"read" | "write">("read");
  const [limitProjects, setLimitProjects] = useState(false);
  const [picked, setPicked] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [created, setCreated] = useState<ApiKey | null>(null);
  const tokenRef = useRef<HTMLInputElement>(null);
  const { copied, copy } = useCopy();
  const create = useMutation({
    mutationFn: () => {
      const scopes: ApiScope[] = access === "write" ? ["read", "write"] : ["read"];
      return api<ApiKey>("/api-keys", {
        method: "POST",
        body: { name: name.trim(), scopes, projects: limitProjects && picked.length ? picked : undefined, expires_at: expiresAtFromDate(expires) },
      });
    },
    onSuccess: (k) => {
      setCreated(k);
      void qc.invalidateQueries({ queryKey: keys.apiKeys });
    },
  });
  const fe = create.error instanceof ApiError ? create.error.fieldErrors() : {};
  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString().slice(0, 10);

  if (created?.token) {
    return (
      <div>
        <p className="notice notice-ok" role="status">
          API key <strong>{created.name}</strong> created ({describeScopes(created).toLowerCase()}).
        </p>
        <p>
          <strong>Copy it now: you won't see it again.</strong> Only a hash is kept; if you lose it, revoke it and create another.
        </p>
        <div className="field">
          <label htmlFor="new-api-key">Your new API key</label>
          <div className="copy-row">
            <input id="new-api-key" ref={tokenRef} readOnly value={created.token} onFocus={(e) => e.currentTarget.select()} data-testid="api-key-token" />
            <button type="button" onClick={() => copy(created.token!, "token", tokenRef.current)}>
              {copied === "token" ? "Copied" : "Copy"}
            </button>
          </div>
        </div>
        <div className="form-actions">
          <button type="button" className="btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      </div>
    );
  }
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    create.mutate();
  }
  return (
    <form onSubmit={onSubmit} noValidate>
      <FormError error={create.error} fields={["name", "scopes", "projects", "expires_at"]} />
      <Field label="Name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoFocus hint="What uses it, e.g. “Nightly report”" error={fe.name} />
      <fieldset>
        <legend>Access</legend>
        <div className="radio-list">
          <label>
            <input type="radio" name="access" value="read" checked={access === "read"} onChange={() => setAccess("read")} /> Read only
            <span className="small muted"> — can read, cannot change anything</span>
          </label>
          <label>
            <input type="radio" name="access" value="write" checked={access === "write"} onChange={() => setAccess("write")} /> Read and write
          </label>
        </div>
        {fe.scopes && <span className="field-error">{fe.scopes}</span>}
      </fieldset>
      <fieldset>
        <legend>Projects</legend>
        <div className="radio-list">
          <label>
            <input type="radio" name="project-scope" checked={!limitProjects} onChange={() => setLimitProjects(false)} /> Every project I can see
          </label>
          <label>
            <input type="radio" name="project-scope" checked={limitProjects} onChange={() => setLimitProjects(true)} disabled={!projects.data?.length} /> Only these projects
          </label>
        </div>
        {limitProjects && (
          <div className="checkbox-row project-picks">
            {(projects.data ?? []).map((p) => (
              <label key={p.id}>
                <input type="checkbox" checked={picked.includes(p.id)} onChange={(e) => setPicked((xs) => (e.target.checked ? [...xs, p.id] : xs.filter((x) => x !== p.id)))} /> {p.name}
              </label>
            ))}
          </div>
        )}
        {fe.projects && <span className="field-error">{fe.projects}</span>}
      </fieldset>
      <Field label="Expires on (optional)" name="expires_at" type="date" min={tomorrow} value={expires} onChange={(e) => setExpires(e.target.value)} hint="Leave empty for a key that lasts until revoked" error={fe.expires_at} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={create.isPending || !name.trim() || (limitProjects && picked.length === 0)}>
          {create.isPending ? "Creating…" : "Create key"}
        </button>
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}
