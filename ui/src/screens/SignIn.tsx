import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api } from "../api/client";
import { clearSession, useSetupStatus } from "../api/queries";
import type { SessionBody } from "../api/types";
import { Field, FormError } from "../components/ui";
import { useSubmit } from "../lib/useSubmit";
import { AuthFrame } from "./AuthFrame";

const LAST_WORKSPACE = "teamflow.lastWorkspace";

/** Only same-site paths are followed after sign-in. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/signin")) return "/";
  return next;
}

export function SignIn() {
  const [params] = useSearchParams();
  const nav = useNavigate();
  const qc = useQueryClient();
  const setup = useSetupStatus();
  const [workspace, setWorkspace] = useState(() => params.get("workspace") ?? localStorage.getItem(LAST_WORKSPACE) ?? "");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [mfa, setMfa] = useState(false);

  useEffect(() => {
    document.title = "Sign in · TeamFlow";
  }, []);

  const form = useSubmit(async () => {
    const res = await api<SessionBody>("/auth/login", {
      method: "POST",
      body: { workspace: workspace.trim().toLowerCase(), email: email.trim(), password, session_cookie: true },
      noRefresh: true,
    });
    if (res.mfa_required) {
      setMfa(true);
      return;
    }
    localStorage.setItem(LAST_WORKSPACE, workspace.trim().toLowerCase());
    clearSession(qc);
    nav(safeNext(params.get("next")), { replace: true });
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    setMfa(false);
    void form.run();
  }

  return (
    <AuthFrame title="Sign in">
      {params.get("expired") && <p className="notice">Your session ended. Please sign in again.</p>}
      {setup.data?.needed && (
        <p className="notice notice-warn">
          This installation is not set up yet. Open the one-time setup link that <code>teamflow serve</code> printed when it started.
        </p>
      )}
      {mfa && (
        <div className="notice notice-warn" role="alert">
          <strong>Second factor required.</strong> This account is protected by a second factor. Signing in with it is coming soon to the web UI; until then, ask your
          workspace admin for help.
        </div>
      )}
      <form onSubmit={onSubmit} noValidate>
        <FormError error={form.error} fields={["workspace", "email", "password"]} />
        <Field label="Workspace" name="workspace" value={workspace} onChange={(e) => setWorkspace(e.target.value)} autoComplete="organization" autoCapitalize="none" required error={form.fieldError("workspace")} hint="The short name of your workspace, e.g. acme" />
        <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="username" required error={form.fieldError("email")} />
        <Field label="Password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required error={form.fieldError("password")} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={form.pending}>
            {form.pending ? "Signing in…" : "Sign in"}
          </button>
        </div>
      </form>
      {setup.data?.mode === "cloud" && (
        <p className="auth-alt">
          New to TeamFlow? <Link to="/signup">Create a workspace</Link>
        </p>
      )}
    </AuthFrame>
  );
}
