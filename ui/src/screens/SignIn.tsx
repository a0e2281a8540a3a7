import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, ApiError } from "../api/client";
import { clearSession, useSetupStatus } from "../api/queries";
import type { SessionBody } from "../api/types";
import { MfaStep } from "../components/MfaStep";
import { Field, FormError } from "../components/ui";
import { enabled } from "../features";
import { mailKnownOff, rememberMailOff } from "../lib/mfa";
import { useSubmit } from "../lib/useSubmit";
import { AuthFrame } from "./AuthFrame";

export const LAST_WORKSPACE = "teamflow.lastWorkspace";

/** Only same-site paths are followed after sign-in. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/signin")) return "/";
  return next;
}

const NOTICES: Record<string, string> = {
  expired: "Your session ended. Please sign in again.",
  reset: "Your password was changed and every session was signed out. Sign in with the new password.",
  mail: "This installation sends no email, so sign-in links and password resets by email are not available. Sign in with your password, or ask a workspace Owner or Admin for help.",
};

export function SignIn() {
  const [params] = useSearchParams();
  const nav = useNavigate();
  const qc = useQueryClient();
  const setup = useSetupStatus();
  const [workspace, setWorkspace] = useState(() => params.get("workspace") ?? localStorage.getItem(LAST_WORKSPACE) ?? "");
  const [email, setEmail] = useState(() => params.get("email") ?? "");
  const [password, setPassword] = useState("");
  const [mode, setMode] = useState<"password" | "link">("password");
  const [mfaToken, setMfaToken] = useState("");
  const [linkSentTo, setLinkSentTo] = useState("");
  // A 409 mail_unavailable on this page (the fallback when the server did not say).
  const [mailRefused, setMailRefused] = useState(false);
  const [notice, setNotice] = useState(() => (params.get("expired") ? "expired" : params.get("reset") ? "reset" : ""));

  const title = mfaToken ? "Two-step verification" : linkSentTo ? "Check your email" : mode === "link" ? "Sign in with an email link" : "Sign in";
  useEffect(() => {
    document.title = `${title} · TeamFlow`;
  }, [title]);

  const ws = workspace.trim().toLowerCase();

  function signedIn() {
    localStorage.setItem(LAST_WORKSPACE, ws);
    clearSession(qc);
    nav(safeNext(params.get("next")), { replace: true });
  }

  const form = useSubmit(async () => {
    const res = await api<SessionBody>("/auth/login", {
      method: "POST",
      body: { workspace: ws, email: email.trim(), password, session_cookie: true },
      noRefresh: true,
    });
    if (res.mfa_required && res.mfa_token) {
      setPassword("");
      setMfaToken(res.mfa_token);
      return;
    }
    signedIn();
  });

  const link = useSubmit(async () => {
    try {
      await api("/auth/magic-link", { method: "POST", body: { workspace: ws, email: email.trim() }, noRefresh: true });
      setLinkSentTo(email.trim());
    } catch (e) {
      if (e instanceof ApiError && e.code === "mail_unavailable") {
        rememberMailOff();
        setMailRefused(true);
        setMode("password");
        setNotice("mail");
        return;
      }
      throw e;
    }
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    setNotice("");
    void (mode === "link" ? link.run() : form.run());
  }

  function restart() {
    setMfaToken("");
    setLinkSentTo("");
    setMode("password");
    form.setError(null);
  }

  if (mfaToken) {
    return (
      <AuthFrame title={title}>
        <MfaStep mfaToken={mfaToken} onSignedIn={signedIn} onRestart={restart} />
      </AuthFrame>
    );
  }

  if (linkSentTo) {
    return (
      <AuthFrame title={title}>
        <p className="notice notice-ok" role="status">
          If <strong>{linkSentTo}</strong> has an account in <strong>{ws}</strong>, a sign-in link is on its way. It works once, for 15 minutes.
        </p>
        <p className="small muted">No mail after a few minutes? Check the spam folder, or ask for another link.</p>
        <div className="form-actions">
          <button type="button" onClick={() => setLinkSentTo("")}>
            Send another link
          </button>
          <button type="button" className="btn-ghost" onClick={restart}>
            Sign in with a password
          </button>
        </div>
      </AuthFrame>
    );
  }

  // The public setup answer says whether the server sends mail; a server that
  // does not say falls back to what a 409 taught this browser. Nothing is
  // offered while the answer is on its way, so the options never flash.
  const serverMail = setup.data?.mail;
  const mailOn = setup.isPending ? false : typeof serverMail === "boolean" ? serverMail : !mailKnownOff();
  const showMail = mailOn && !mailRefused && enabled("magicLink");
  const active = mode === "link" ? link : form;
  return (
    <AuthFrame title={title}>
      {notice && (
        <p className={`notice${notice === "mail" ? " notice-warn" : notice === "reset" ? " notice-ok" : ""}`} role={notice === "expired" ? undefined : "status"}>
          {NOTICES[notice]}
        </p>
      )}
      {setup.data?.needed && (
        <p className="notice notice-warn">
          This installation is not set up yet. Open the one-time setup link that <code>teamflow serve</code> printed when it started.
        </p>
      )}
      {mode === "link" && <p>We will email you a link that signs you in once, without a password.</p>}
      <form onSubmit={onSubmit} noValidate>
        <FormError error={active.error} fields={["workspace", "email", "password"]} />
        <Field label="Workspace" name="workspace" value={workspace} onChange={(e) => setWorkspace(e.target.value)} autoComplete="organization" autoCapitalize="none" required error={active.fieldError("workspace")} hint="The short name of your workspace, e.g. acme" />
        <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="username" required error={active.fieldError("email")} />
        {mode === "password" && (
          <Field
            label="Password"
            name="password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete="current-password"
            required
            error={form.fieldError("password")}
          />
        )}
        {mode === "password" && showMail && (
          <p className="small field-aside">
            <Link to={`/forgot-password?${new URLSearchParams({ workspace: ws, email: email.trim() })}`}>Forgot your password?</Link>
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={active.pending}>
            {mode === "link" ? (link.pending ? "Sending…" : "Email me a link") : form.pending ? "Signing in…" : "Sign in"}
          </button>
          {showMail && mode === "password" && (
            <button type="button" className="btn-ghost" onClick={() => { setMode("link"); setNotice(""); }}>
              Email me a sign-in link
            </button>
          )}
          {mode === "link" && (
            <button type="button" className="btn-ghost" onClick={() => setMode("password")}>
              Use my password
            </button>
          )}
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
