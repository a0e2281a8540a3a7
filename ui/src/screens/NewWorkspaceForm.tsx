// The form shared by cloud signup and on-prem first-run setup.

import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { api } from "../api/client";
import { clearSession } from "../api/queries";
import type { Created } from "../api/types";
import { Field, FormError } from "../components/ui";
import { browserTimezone, slugify } from "../lib/format";
import { useSubmit } from "../lib/useSubmit";

const FIELDS = ["workspace_name", "workspace_slug", "name", "email", "password", "timezone", "token"];

export function NewWorkspaceForm({ endpoint, token, submitLabel }: { endpoint: "/signup" | "/setup"; token?: string; submitLabel: string }) {
  const nav = useNavigate();
  const qc = useQueryClient();
  const [wsName, setWsName] = useState("");
  const [slug, setSlug] = useState("");
  const [slugTouched, setSlugTouched] = useState(false);
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");

  const form = useSubmit(async () => {
    const body: Record<string, unknown> = {
      workspace_name: wsName.trim(),
      workspace_slug: slug.trim(),
      name: name.trim(),
      email: email.trim(),
      password,
      timezone: browserTimezone(),
      session_cookie: true,
    };
    if (token !== undefined) body.token = token;
    const res = await api<Created>(endpoint, { method: "POST", body, noRefresh: true });
    localStorage.setItem("teamflow.lastWorkspace", res.workspace.slug);
    clearSession(qc);
    nav("/", { replace: true });
  });

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void form.run();
  }

  return (
    <form onSubmit={onSubmit} noValidate>
      <FormError error={form.error} fields={FIELDS} />
      {form.fieldError("token") && <p className="form-error" role="alert">{form.fieldError("token")}</p>}
      <Field
        label="Workspace name"
        name="workspace_name"
        value={wsName}
        onChange={(e) => {
          setWsName(e.target.value);
          if (!slugTouched) setSlug(slugify(e.target.value));
        }}
        required
        maxLength={100}
        autoComplete="organization"
        error={form.fieldError("workspace_name")}
      />
      <Field
        label="Workspace address"
        name="workspace_slug"
        value={slug}
        onChange={(e) => {
          setSlugTouched(true);
          setSlug(e.target.value.toLowerCase());
        }}
        required
        minLength={3}
        maxLength={40}
        autoCapitalize="none"
        hint="3–40 lowercase letters, digits or hyphens; your team types it to sign in"
        error={form.fieldError("workspace_slug")}
      />
      <Field label="Your name" name="name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="name" error={form.fieldError("name")} />
      <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="email" error={form.fieldError("email")} />
      <Field label="Password" name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={8} autoComplete="new-password" hint="At least 8 characters" error={form.fieldError("password")} />
      {form.fieldError("timezone") && <p className="field-error">{form.fieldError("timezone")}</p>}
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={form.pending}>
          {form.pending ? "Creating…" : submitLabel}
        </button>
      </div>
    </form>
  );
}
