// Two-factor authentication (TOTP, RFC 6238): enrolment with a QR code and
// the setup key, the recovery codes (shown once: copy or download), and
// turning it off. Used by the profile's Security section and by the
// mandatory-enrolment screen.

import { useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type FormEvent } from "react";
import { api, ApiError } from "../api/client";
import { keys } from "../api/queries";
import type { Me, TOTPEnrolment } from "../api/types";
import { cleanTotp, groupSecret, isTotp, recoveryCodesText } from "../lib/security";
import { useSubmit } from "../lib/useSubmit";
import { QrCode } from "./QrCode";
import { useToast } from "./toast";
import { Field, FormError } from "./ui";

/** Copies text; falls back to selecting it in the given element. */
export function useCopy() {
  const [copied, setCopied] = useState("");
  async function copy(text: string, what: string, fallback?: HTMLElement | null) {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(what);
      window.setTimeout(() => setCopied((c) => (c === what ? "" : c)), 4000);
    } catch {
      if (fallback) {
        const r = document.createRange();
        r.selectNodeContents(fallback);
        const sel = window.getSelection();
        sel?.removeAllRanges();
        sel?.addRange(r);
        if (fallback instanceof HTMLInputElement) fallback.select();
      }
      setCopied("");
    }
  }
  return { copied, copy };
}

export function TwoFactorEnrol({ me, workspaceName, onDone, onCancel }: { me: Me; workspaceName: string; onDone: () => void; onCancel?: () => void }) {
  const qc = useQueryClient();
  const [password, setPassword] = useState("");
  const [enrolment, setEnrolment] = useState<TOTPEnrolment | null>(null);
  const [code, setCode] = useState("");
  const [codeError, setCodeError] = useState("");
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);
  const secretRef = useRef<HTMLElement>(null);
  const { copied, copy } = useCopy();

  const begin = useSubmit(async () => {
    setEnrolment(await api<TOTPEnrolment>("/me/mfa/totp", { method: "POST", body: { password } }));
    setPassword("");
  });
  const confirm = useSubmit(async () => {
    const res = await api<{ recovery_codes: string[] }>("/me/mfa/totp/confirm", { method: "POST", body: { code: cleanTotp(code) } });
    setRecoveryCodes(res.recovery_codes);
    // The account has a second factor now; the full refetch waits for "Done" so this step stays on screen.
    qc.setQueryData<Me>(keys.me, (m) => (m ? { ...m, mfa_enabled: true, mfa_required_by: undefined } : m));
  });

  if (recoveryCodes) {
    return <RecoveryCodes codes={recoveryCodes} account={me.email} workspace={workspaceName} onDone={onDone} />;
  }

  if (!enrolment) {
    return (
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void begin.run();
        }}
        noValidate
      >
        <p>You will need an authenticator app on your phone or computer (for example Google Authenticator, Microsoft Authenticator, 1Password, Bitwarden, FreeOTP).</p>
        <FormError error={begin.error} fields={["password"]} />
        <input type="text" name="username" autoComplete="username" value={me.email} hidden readOnly />
        <Field label="Your password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required autoFocus error={begin.fieldError("password")} hint="Confirm it's you before changing how you sign in" />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={begin.pending || !password}>
            {begin.pending ? "Checking…" : "Continue"}
          </button>
          {onCancel && (
            <button type="button" onClick={onCancel}>
              Cancel
            </button>
          )}
        </div>
      </form>
    );
  }

  const wrong = confirm.error instanceof ApiError && (confirm.error.code === "invalid_code" || confirm.error.field === "code");
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        if (!isTotp(code)) return setCodeError("Enter the 6-digit code the app shows.");
        setCodeError("");
        void confirm.run();
      }}
      noValidate
    >
      <ol className="steps">
        <li>
          <p>Scan this QR code with your authenticator app.</p>
          <QrCode value={enrolment.otpauth_url} label={`QR code to add TeamFlow (${me.email}) to an authenticator app`} />
        </li>
        <li>
          <p>Can't scan it? Type this setup key into the app (time-based, 6 digits):</p>
          <div className="copy-row secret-row">
            <code ref={secretRef} className="secret" data-testid="totp-secret" aria-label="Setup key">
              {groupSecret(enrolment.secret)}
            </code>
            <button type="button" className="btn-small" onClick={() => copy(enrolment.secret, "secret", secretRef.current)}>
              {copied === "secret" ? "Copied" : "Copy key"}
            </button>
          </div>
        </li>
        <li>
          <Field
            label="Enter the 6-digit code the app shows"
            name="code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            inputMode="numeric"
            autoComplete="one-time-code"
            maxLength={7}
            required
            error={codeError || (wrong ? "That code does not match. Check that the time on your device is right, then try the newest code." : undefined)}
          />
        </li>
      </ol>
      {!wrong && <FormError error={confirm.error} fields={["code"]} />}
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={confirm.pending}>
          {confirm.pending ? "Turning on…" : "Turn on two-factor authentication"}
        </button>
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

export function RecoveryCodes({ codes, account, workspace, onDone, notice = "Two-factor authentication is on." }: { codes: string[]; account: string; workspace: string; onDone: () => void; notice?: string }) {
  const [saved, setSaved] = useState(false);
  const listRef = useRef<HTMLOListElement>(null);
  const { copied, copy } = useCopy();
  const text = recoveryCodesText(codes, account, workspace);
  function download() {
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `teamflow-recovery-codes-${workspace.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.txt`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  return (
    <div className="recovery" role="region" aria-labelledby="recovery-h">
      <p className="notice notice-ok" role="status">
        {notice}
      </p>
      <h3 id="recovery-h">Save your recovery codes</h3>
      <p>
        If you lose your device, each of these codes signs you in once instead of the app. <strong>They are shown only now</strong>: copy them or download them, and keep
        them somewhere safe, such as a password manager.
      </p>
      <ol ref={listRef} className="recovery-codes" data-testid="recovery-codes">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ol>
      <div className="form-actions">
        <button type="button" onClick={() => copy(text, "codes", listRef.current)}>
          {copied === "codes" ? "Copied" : "Copy codes"}
        </button>
        <button type="button" onClick={download}>
          Download as a text file
        </button>
      </div>
      <label className="check-label">
        <input type="checkbox" checked={saved} onChange={(e) => setSaved(e.target.checked)} /> I have saved my recovery codes
      </label>
      <div className="form-actions">
        <button type="button" className="btn-primary" disabled={!saved} onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

export function TwoFactorDisable({ me, graceDays, onDone, onCancel }: { me: Me; graceDays?: number; onDone: () => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const { toast } = useToast();
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [codeError, setCodeError] = useState("");
  const form = useSubmit(async () => {
    await api("/me/mfa/disable", { method: "POST", body: { password, code: cleanTotp(code) } });
    await qc.invalidateQueries({ queryKey: keys.me });
    toast({ title: "Two-factor authentication is off", variant: "success" });
    onDone();
  });
  const admin = me.role === "owner" || me.role === "admin";
  const wrongCode = form.error instanceof ApiError && form.error.code === "invalid_code";
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        if (!isTotp(code)) return setCodeError("Enter the 6-digit code the app shows.");
        setCodeError("");
        void form.run();
      }}
      noValidate
    >
      {admin && (
        <p className="notice notice-warn">
          Owners and Admins must use two-factor authentication. Without it you have {graceDays === undefined ? "a few" : graceDays} day{graceDays === 1 ? "" : "s"} to set it up
          again; after that you can reach nothing else.
        </p>
      )}
      <FormError error={form.error} fields={["password", "code"]} />
      <input type="text" name="username" autoComplete="username" value={me.email} hidden readOnly />
      <Field label="Your password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required autoFocus error={form.fieldError("password")} />
      <Field
        label="Code from your authenticator app"
        name="code"
        value={code}
        onChange={(e) => setCode(e.target.value)}
        inputMode="numeric"
        autoComplete="one-time-code"
        maxLength={7}
        required
        error={codeError || (wrongCode ? "That code does not match." : undefined)}
      />
      <div className="form-actions">
        <button type="submit" className="btn-danger" disabled={form.pending}>
          {form.pending ? "Turning off…" : "Turn off"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Replaces the recovery codes (confirmed with the password or a current code) and shows the new ones once. */
export function RegenerateRecoveryCodes({ me, workspaceName, onDone, onCancel }: { me: Me; workspaceName: string; onDone: () => void; onCancel: () => void }) {
  const qc = useQueryClient();
  const [how, setHow] = useState<"password" | "code">("password");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [codeError, setCodeError] = useState("");
  const [codes, setCodes] = useState<string[] | null>(null);
  const form = useSubmit(async () => {
    const body = how === "password" ? { password } : { code: cleanTotp(code) };
    const res = await api<{ recovery_codes: string[] }>("/me/mfa/recovery-codes", { method: "POST", body });
    setCodes(res.recovery_codes);
    setPassword("");
    setCode("");
  });
  if (codes) {
    return (
      <RecoveryCodes
        codes={codes}
        account={me.email}
        workspace={workspaceName}
        notice="New recovery codes were made. The old ones no longer work."
        onDone={() => {
          void qc.invalidateQueries({ queryKey: keys.me });
          onDone();
        }}
      />
    );
  }
  const wrongCode = form.error instanceof ApiError && form.error.code === "invalid_code";
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        if (how === "code" && !isTotp(code)) return setCodeError("Enter the 6-digit code the app shows.");
        setCodeError("");
        void form.run();
      }}
      noValidate
    >
      <FormError error={form.error} fields={["password", "code"]} />
      <input type="text" name="username" autoComplete="username" value={me.email} hidden readOnly />
      {how === "password" ? (
        <Field label="Your password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required autoFocus error={form.fieldError("password")} />
      ) : (
        <Field
          label="Code from your authenticator app"
          name="code"
          value={code}
          onChange={(e) => setCode(e.target.value)}
          inputMode="numeric"
          autoComplete="one-time-code"
          maxLength={7}
          required
          autoFocus
          error={codeError || (wrongCode ? "That code does not match." : form.fieldError("code"))}
        />
      )}
      <p>
        <button type="button" className="btn-link" onClick={() => setHow(how === "password" ? "code" : "password")}>
          {how === "password" ? "Use a code from the app instead" : "Use your password instead"}
        </button>
      </p>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={form.pending || (how === "password" ? !password : !code)}>
          {form.pending ? "Making new codes…" : "Make new codes"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
