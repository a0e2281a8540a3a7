// The second step of a sign-in (password or email link) for an account with
// a second factor: a 6-digit code from the authenticator app, or one of the
// one-time recovery codes. POST /auth/mfa {mfa_token, code | recovery_code}.

import { useState, type FormEvent } from "react";
import { api, ApiError } from "../api/client";
import type { SessionBody } from "../api/types";
import { cleanRecoveryCode, cleanTotp, isTotp } from "../lib/mfa";
import { useSubmit } from "../lib/useSubmit";
import { Field, FormError } from "./ui";

export function MfaStep({ mfaToken, onSignedIn, onRestart }: { mfaToken: string; onSignedIn: () => void; onRestart: () => void }) {
  const [recovery, setRecovery] = useState(false);
  const [code, setCode] = useState("");
  const [localError, setLocalError] = useState("");
  const form = useSubmit(async () => {
    const body = recovery ? { recovery_code: cleanRecoveryCode(code) } : { code: cleanTotp(code) };
    await api<SessionBody>("/auth/mfa", { method: "POST", body: { mfa_token: mfaToken, ...body, session_cookie: true }, noRefresh: true });
    onSignedIn();
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (!recovery && !isTotp(code)) return setLocalError("Enter the 6-digit code your authenticator app shows.");
    if (recovery && cleanRecoveryCode(code).length < 6) return setLocalError("Enter one of your recovery codes.");
    setLocalError("");
    void form.run();
  }

  const apiErr = form.error instanceof ApiError ? form.error : null;
  const wrong = apiErr?.code === "invalid_mfa" || apiErr?.code === "invalid_code";
  const fieldError =
    localError ||
    (wrong
      ? recovery
        ? "That recovery code is not valid or was used already."
        : "That code is not valid. Codes change every 30 seconds; check that your device's clock is right."
      : undefined);

  return (
    <form onSubmit={onSubmit} noValidate aria-describedby="mfa-intro">
      <p id="mfa-intro">
        {recovery
          ? "Enter one of the recovery codes you saved when you turned on two-factor authentication. Each code works once."
          : "Open your authenticator app and enter the 6-digit code it shows for TeamFlow."}
      </p>
      {!wrong && <FormError error={form.error} fields={["code", "recovery_code"]} />}
      {recovery ? (
        <Field
          key="recovery"
          label="Recovery code"
          name="recovery_code"
          value={code}
          onChange={(e) => setCode(e.target.value)}
          autoComplete="off"
          autoCapitalize="none"
          spellCheck={false}
          autoFocus
          required
          error={fieldError}
          placeholder="xxxxx-xxxxx-xxxxxx"
        />
      ) : (
        <Field
          key="totp"
          label="Authentication code"
          name="code"
          value={code}
          onChange={(e) => setCode(e.target.value)}
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9 ]*"
          maxLength={7}
          autoFocus
          required
          error={fieldError}
        />
      )}
      {wrong && <p className="small muted">After 5 wrong codes the sign-in has to start again.</p>}
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={form.pending}>
          {form.pending ? "Checking…" : "Verify"}
        </button>
        <button
          type="button"
          className="btn-ghost"
          onClick={() => {
            setRecovery((r) => !r);
            setCode("");
            setLocalError("");
            form.setError(null);
          }}
        >
          {recovery ? "Use the authenticator app" : "Use a recovery code"}
        </button>
      </div>
      <p className="auth-alt">
        Lost both your device and your recovery codes? Contact your workspace's Owner.{" "}
        <button type="button" className="btn-link" onClick={onRestart}>
          Start over
        </button>
      </p>
    </form>
  );
}
