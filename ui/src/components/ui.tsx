// Small building blocks: fields with their errors, states, avatars, dialogs.

import * as Dialog from "@radix-ui/react-dialog";
import { useId, type ReactNode, type InputHTMLAttributes, type SelectHTMLAttributes } from "react";
import { Link } from "react-router";
import { ApiError, formatWait } from "../api/client";
import { initials } from "../lib/format";

export function Spinner({ label = "Loading" }: { label?: string }) {
  return <span className="spinner" role="status" aria-label={label} />;
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state" aria-busy="true">
      <Spinner label={label} /> <span>{label}</span>
    </div>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  const msg = error instanceof ApiError ? error.message : "Something went wrong.";
  const notFound = error instanceof ApiError && error.status === 404;
  return (
    <div className="state state-error" role="alert">
      <p>{notFound ? "Not found — it may have been deleted, or you may not have access." : msg}</p>
      {retry && !notFound && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state">
      <p>
        <strong>{title}</strong>
      </p>
      {children}
    </div>
  );
}

export function Avatar({ name, title }: { name: string; title?: string }) {
  return (
    <span className="avatar" title={title ?? name} aria-hidden="true">
      {initials(name)}
    </span>
  );
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & {
  label: string;
  name: string;
  error?: string;
  hint?: ReactNode;
};

/** A labelled input whose error is announced and tied to it (aria-describedby). */
export function Field({ label, name, error, hint, id, ...rest }: FieldProps) {
  const auto = useId();
  const fid = id ?? `${name}-${auto}`;
  const hintId = hint ? `${fid}-hint` : undefined;
  const errId = error ? `${fid}-error` : undefined;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <input id={fid} name={name} aria-invalid={error ? true : undefined} aria-describedby={[hintId, errId].filter(Boolean).join(" ") || undefined} {...rest} />
      {hint && (
        <span id={hintId} className="field-hint">
          {hint}
        </span>
      )}
      {error && (
        <span id={errId} className="field-error">
          {error}
        </span>
      )}
    </div>
  );
}

type SelectFieldProps = SelectHTMLAttributes<HTMLSelectElement> & {
  label: string;
  name: string;
  error?: string;
  children: ReactNode;
};

export function SelectField({ label, name, error, id, children, ...rest }: SelectFieldProps) {
  const auto = useId();
  const fid = id ?? `${name}-${auto}`;
  const errId = error ? `${fid}-error` : undefined;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <select id={fid} name={name} aria-invalid={error ? true : undefined} aria-describedby={errId} {...rest}>
        {children}
      </select>
      {error && (
        <span id={errId} className="field-error">
          {error}
        </span>
      )}
    </div>
  );
}

/** The error of a form as a whole (not tied to one input), with the plan-limit hint. */
export function FormError({ error, fields }: { error: unknown; fields?: string[] }) {
  if (!error) return null;
  if (!(error instanceof ApiError)) return <div className="form-error" role="alert">Something went wrong. Please try again.</div>;
  if (error.isPlanLimit) return <PlanLimitHint error={error} />;
  if (error.isRateLimited) {
    return (
      <div className="form-error" role="alert">
        Too many attempts. {error.retryAfter ? `Please wait ${formatWait(error.retryAfter)} and try again.` : "Please wait a moment and try again."}
      </div>
    );
  }
  const fe = error.fieldErrors();
  // Field errors shown next to their inputs are not repeated here.
  const shownElsewhere = fields && Object.keys(fe).some((k) => fields.includes(k));
  if (shownElsewhere && !fe[""]) return null;
  return (
    <div className="form-error" role="alert">
      {error.message}
    </div>
  );
}

export function PlanLimitHint({ error }: { error: ApiError }) {
  const d = error.details ?? {};
  const limit = String(d.limit ?? "items");
  const plan = String(d.plan ?? "current");
  const max = d.max !== undefined ? String(d.max) : "";
  return (
    <div className="notice notice-warn" role="alert">
      <strong>Plan limit reached.</strong> The {plan} plan allows {max ? `${max} ` : ""}
      {limit}. <Link to="/settings#plan">Upgrade the plan</Link> to add more — an Owner can change it.
    </div>
  );
}

export function Modal({
  open,
  onOpenChange,
  title,
  description,
  children,
}: {
  open: boolean;
  onOpenChange: (o: boolean) => void;
  title: string;
  description?: string;
  children: ReactNode;
}) {
  return (
    <Dialog.Root open={open} onOpenChange={onOpenChange}>
      <Dialog.Portal>
        <Dialog.Overlay className="dialog-overlay" />
        <Dialog.Content className="dialog-content" aria-describedby={description ? undefined : undefined}>
          <Dialog.Title asChild>
            <h2>{title}</h2>
          </Dialog.Title>
          {description ? <Dialog.Description className="muted">{description}</Dialog.Description> : <Dialog.Description className="visually-hidden">{title}</Dialog.Description>}
          {children}
        </Dialog.Content>
      </Dialog.Portal>
    </Dialog.Root>
  );
}

export function PriorityBadge({ priority }: { priority: string }) {
  if (!priority || priority === "none") return null;
  return <span className={`badge prio-${priority}`}>{priority}</span>;
}
