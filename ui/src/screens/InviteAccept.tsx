import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError } from "../api/client";
import { clearSession } from "../api/queries";
import type { Created, InvitationPreview } from "../api/types";
import { Field, FormError, Loading } from "../components/ui";
import { browserTimezone, formatDateTime } from "../lib/format";
import { useSubmit } from "../lib/useSubmit";
import { AuthFrame } from "./AuthFrame";

export default function InviteAccept() {
  const { token = "" } = useParams();
  const nav = useNavigate();
  const qc = useQueryClient();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const preview = useQuery({
    queryKey: ["invitation-preview", token],
    queryFn: () => api<InvitationPreview>(`/invitations/${encodeURIComponent(token)}/preview`, { noRefresh: true }),
    retry: false,
  });
  useEffect(() => {
    document.title = "Join a workspace · TeamFlow";
  }, []);

  const form = useSubmit(async () => {
    const res = await api<Created>(`/invitations/${encodeURIComponent(token)}/accept`, {
      method: "POST",
      body: { name: name.trim(), password, timezone: browserTimezone(), session_cookie: true },
      noRefresh: true,
    });
    localStorage.setItem("teamflow.lastWorkspace", res.workspace.slug);
    clearSession(qc);
    nav("/", { replace: true });
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void form.run();
  }

  if (preview.isPending) return <AuthFrame title="Join a workspace"><Loading /></AuthFrame>;
  if (preview.isError) {
    const gone = preview.error instanceof ApiError && preview.error.status === 404;
    return (
      <AuthFrame title="Join a workspace">
        <p className="notice notice-warn" role="alert">
          {gone ? "This invitation is no longer valid: it was used, revoked or has expired. Ask the person who invited you for a new link." : preview.error.message}
        </p>
        <p className="auth-alt">
          <Link to="/signin">Sign in</Link>
        </p>
      </AuthFrame>
    );
  }
  const p = preview.data;
  return (
    <AuthFrame title={`Join ${p.workspace_name}`}>
      <p>
        You were invited as <strong>{p.role}</strong> with <strong>{p.email}</strong>. The invitation expires {formatDateTime(p.expires_at)}.
      </p>
      <form onSubmit={onSubmit} noValidate>
        <FormError error={form.error} fields={["name", "password", "timezone"]} />
        <Field label="Email" name="email" value={p.email} readOnly disabled />
        <Field label="Your name" name="name" value={name} onChange={(e) => setName(e.target.value)} required autoComplete="name" error={form.fieldError("name")} />
        <Field label="Choose a password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={8} autoComplete="new-password" hint="At least 8 characters" error={form.fieldError("password")} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={form.pending}>
            {form.pending ? "Joining…" : "Join workspace"}
          </button>
        </div>
      </form>
    </AuthFrame>
  );
}
