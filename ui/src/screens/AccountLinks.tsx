// The pages that mailed links open, and the request for one: forgot password
// (/forgot-password), reset (/reset-password?token=), sign-in link
// (/magic-link?token=) and email confirmation (/verify-email?token=). One
// lazy chunk: none of them is on the way to the first screen.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, ApiError } from "../api/client";
import { clearSession, keys } from "../api/queries";
import type { SessionBody } from "../api/types";
import { MfaStep } from "../components/MfaStep";
import { Field, FormError, Loading } from "../components/ui";
import { rememberMailOff } from "../lib/security";
import { useSubmit } from "../lib/useSubmit";
import { AuthFrame } from "./AuthFrame";
import { LAST_WORKSPACE } from "./SignIn";

function useTitle(t: string) {
  useEffect(() => {
    document.title = `${t} · TeamFlow`;
  }, [t]);
}

const isBadLink = (e: unknown) => e instanceof ApiError && (e.code === "invalid_token" || e.status === 401 || e.status === 404);

function BadLink({ what, again }: { what: string; again?: { to: string; label: string } }) {
  return (
    <>
      <p className="notice notice-warn" role="alert">
        This {what} link is not valid: it was used already, has expired, or was copied incompletely.
      </p>
      <div className="form-actions">
        {again && (
          <Link className="btn btn-primary" to={again.to}>
            {again.label}
          </Link>
        )}
        <Link className="btn" to="/signin">
          Go to sign-in
        </Link>
      </div>
    </>
  );
}

export function ForgotPassword() {
  const [params] = useSearchParams();
  const [workspace, setWorkspace] = useState(() => params.get("workspace") || localStorage.getItem(LAST_WORKSPACE) || "");
  const [email, setEmail] = useState(() => params.get("email") ?? "");
  const [sent, setSent] = useState(false);
  const [noMail, setNoMail] = useState(false);
  useTitle("Reset your password");
  const form = useSubmit(async () => {
    try {
      await api("/auth/password-reset", { method: "POST", body: { workspace: workspace.trim().toLowerCase(), email: email.trim() }, noRefresh: true });
      setSent(true);
    } catch (e) {
      if (e instanceof ApiError && e.code === "mail_unavailable") {
        rememberMailOff();
        setNoMail(true);
        return;
      }
      throw e;
    }
  });
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void form.run();
  }
  if (noMail) {
    return (
      <AuthFrame title="Reset your password">
        <p className="notice notice-warn" role="alert">
          This installation sends no email, so a password cannot be reset by mail. Ask a workspace Owner or Admin, or whoever runs this TeamFlow installation, for help.
        </p>
        <p className="auth-alt">
          <Link to="/signin">Back to sign-in</Link>
        </p>
      </AuthFrame>
    );
  }
  if (sent) {
    return (
      <AuthFrame title="Check your email">
        <p className="notice notice-ok" role="status">
          If <strong>{email.trim()}</strong> has an account in <strong>{workspace.trim().toLowerCase()}</strong>, a link to choose a new password is on its way. It works once, for an hour.
        </p>
        <div className="form-actions">
          <button type="button" onClick={() => setSent(false)}>
            Send another link
          </button>
          <Link className="btn btn-ghost" to="/signin">
            Back to sign-in
          </Link>
        </div>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Reset your password">
      <p>Enter your workspace and email; we will send you a link to choose a new password.</p>
      <form onSubmit={onSubmit} noValidate>
        <FormError error={form.error} fields={["workspace", "email"]} />
        <Field label="Workspace" name="workspace" value={workspace} onChange={(e) => setWorkspace(e.target.value)} autoComplete="organization" autoCapitalize="none" required error={form.fieldError("workspace")} />
        <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="username" required autoFocus error={form.fieldError("email")} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={form.pending}>
            {form.pending ? "Sending…" : "Email me a reset link"}
          </button>
          <Link className="btn btn-ghost" to="/signin">
            Back to sign-in
          </Link>
        </div>
      </form>
    </AuthFrame>
  );
}

export function ResetPassword() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const nav = useNavigate();
  const qc = useQueryClient();
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [mismatch, setMismatch] = useState(false);
  useTitle("Choose a new password");
  const form = useSubmit(async () => {
    await api("/auth/password-reset/confirm", { method: "POST", body: { token, password }, noRefresh: true });
    clearSession(qc);
    nav("/signin?reset=1", { replace: true });
  });
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (password !== confirm) return setMismatch(true);
    setMismatch(false);
    void form.run();
  }
  if (!token || isBadLink(form.error)) {
    return (
      <AuthFrame title="Choose a new password">
        <BadLink what="password reset" again={{ to: "/forgot-password", label: "Request a new link" }} />
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Choose a new password">
      <p>Every session of your account is signed out when the password changes; a second factor stays required.</p>
      <form onSubmit={onSubmit} noValidate>
        <FormError error={form.error} fields={["password"]} />
        <input type="text" name="username" autoComplete="username" hidden readOnly />
        <Field label="New password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" minLength={8} required autoFocus hint="At least 8 characters" error={form.fieldError("password")} />
        <Field label="Repeat the new password" name="confirm" type="password" value={confirm} onChange={(e) => setConfirm(e.target.value)} autoComplete="new-password" required error={mismatch ? "The two passwords differ." : undefined} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={form.pending}>
            {form.pending ? "Saving…" : "Set the new password"}
          </button>
        </div>
      </form>
    </AuthFrame>
  );
}

/**
 * A sign-in link works once. The page asks before using it: mail scanners
 * that open links (some run scripts) must not spend it.
 */
export function MagicLink() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const nav = useNavigate();
  const qc = useQueryClient();
  const [mfaToken, setMfaToken] = useState("");
  useTitle(mfaToken ? "Two-step verification" : "Sign in with an email link");
  function signedIn() {
    clearSession(qc);
    nav("/", { replace: true });
  }
  const use = useSubmit(async () => {
    const res = await api<SessionBody>("/auth/magic-link/verify", { method: "POST", body: { token, session_cookie: true }, noRefresh: true });
    if (res.mfa_required && res.mfa_token) return setMfaToken(res.mfa_token);
    signedIn();
  });
  if (mfaToken) {
    return (
      <AuthFrame title="Two-step verification">
        <MfaStep mfaToken={mfaToken} onSignedIn={signedIn} onRestart={() => nav("/signin", { replace: true })} />
      </AuthFrame>
    );
  }
  if (!token || isBadLink(use.error)) {
    return (
      <AuthFrame title="Sign in with an email link">
        <BadLink what="sign-in" again={{ to: "/signin", label: "Request a new link" }} />
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Sign in with an email link">
      <p>This link signs you in once. Continue on the device where you want to work.</p>
      <FormError error={use.error} />
      <div className="form-actions">
        <button type="button" className="btn-primary" autoFocus disabled={use.pending} onClick={() => void use.run()}>
          {use.pending ? "Signing in…" : "Sign in"}
        </button>
        <Link className="btn btn-ghost" to="/signin">
          Sign in another way
        </Link>
      </div>
    </AuthFrame>
  );
}

/** Confirms the address at once (harmless if a scanner does it: it proves the mailbox). */
export function VerifyEmail() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const qc = useQueryClient();
  useTitle("Confirm your email");
  const verify = useMutation({
    mutationFn: () => api("/auth/verify-email", { method: "POST", body: { token }, noRefresh: true }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.me }),
  });
  const started = useRef(false);
  useEffect(() => {
    if (token && !started.current) {
      started.current = true;
      verify.mutate();
    }
  }, [token, verify]);
  return (
    <AuthFrame title="Confirm your email">
      {!token || isBadLink(verify.error) ? (
        <>
          <p className="notice notice-warn" role="alert">
            This confirmation link is not valid: it was used already, has expired (links last 24 hours), or was copied incompletely.
          </p>
          <p>Sign in and choose “Send a new link” on the banner at the top to get another.</p>
          <p className="auth-alt">
            <Link to="/">Go to TeamFlow</Link>
          </p>
        </>
      ) : verify.isSuccess ? (
        <>
          <p className="notice notice-ok" role="status">
            Your email address is confirmed. Thank you!
          </p>
          <div className="form-actions">
            <Link className="btn btn-primary" to="/">
              Go to TeamFlow
            </Link>
          </div>
        </>
      ) : verify.isError ? (
        <>
          <FormError error={verify.error} />
          <button type="button" onClick={() => verify.mutate()}>
            Try again
          </button>
        </>
      ) : (
        <Loading label="Confirming your email…" />
      )}
    </AuthFrame>
  );
}
