import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { api, ApiError, type Page } from "../api/client";
import { keys, useMe, useMembers, usePlan } from "../api/queries";
import { ROLES, type Invitation, type Me, type Member, type Role } from "../api/types";
import { useToast } from "../components/toast";
import { UnverifiedNotice } from "../components/SecurityBanners";
import { Avatar, ErrorState, Field, FormError, Loading, Modal, SelectField } from "../components/ui";
import { formatDateTime } from "../lib/format";

export default function People() {
  const me = useMe();
  const members = useMembers();
  const plan = usePlan();
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  const [params, setParams] = useSearchParams();
  const inviteOpen = params.get("invite") === "1" && isAdmin;
  const setInviteOpen = (o: boolean) => setParams(o ? { invite: "1" } : {}, { replace: true });
  const [confirm, setConfirm] = useState<Member | null>(null);
  const [signOutOf, setSignOutOf] = useState<Member | null>(null);
  const [resetOf, setResetOf] = useState<Member | null>(null);
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  useEffect(() => {
    document.title = "People · TeamFlow";
  }, []);
  // Invitations are accepted elsewhere: opening the screen shows who joined since.
  useEffect(() => {
    for (const key of [keys.members, keys.invitations, keys.plan]) void qc.invalidateQueries({ queryKey: key });
  }, [qc]);

  const update = useMutation({
    mutationFn: (v: { m: Member; role?: Role; status?: "active" | "deactivated" }) =>
      api<Member>(`/members/${v.m.id}`, { method: "PATCH", version: v.m.version, body: { role: v.role, status: v.status } }),
    onMutate: async (v) => {
      await qc.cancelQueries({ queryKey: keys.members });
      const prev = qc.getQueryData<Member[]>(keys.members);
      qc.setQueryData<Member[]>(keys.members, (xs) => xs?.map((x) => (x.id === v.m.id ? { ...x, role: v.role ?? x.role, status: v.status ?? x.status } : x)));
      return { prev };
    },
    onError: (e, _v, ctx) => {
      qc.setQueryData(keys.members, ctx?.prev);
      toastError(e, "change the member");
      if (e instanceof ApiError && e.status === 412) void qc.invalidateQueries({ queryKey: keys.members });
    },
    onSuccess: (m, v) => {
      qc.setQueryData<Member[]>(keys.members, (xs) => xs?.map((x) => (x.id === m.id ? m : x)));
      void qc.invalidateQueries({ queryKey: keys.plan });
      if (v.status) toast({ title: v.status === "deactivated" ? `${m.name} was deactivated and signed out everywhere` : `${m.name} is active again`, variant: "success" });
    },
  });

  const endSessions = useMutation({
    mutationFn: (m: Member) => api(`/members/${encodeURIComponent(m.id)}/sessions`, { method: "DELETE" }),
    onSuccess: (_r, m) => toast({ title: `${m.name} was signed out everywhere`, description: "Every browser and device must sign in again; API keys keep working.", variant: "success" }),
    onError: (e) => toastError(e, "sign them out"),
  });

  const resetMfa = useMutation({
    mutationFn: (m: Member) => api(`/members/${encodeURIComponent(m.id)}/mfa`, { method: "DELETE" }),
    onSuccess: (_r, m) =>
      toast({
        title: `${m.name}'s two-factor authentication was reset`,
        description: "They were signed out everywhere; they sign in with their password and set up a new authenticator app.",
        variant: "success",
      }),
    onError: (e, m) => {
      if (e instanceof ApiError && e.code === "mfa_not_enabled") toast({ title: `${m.name} has no two-factor authentication to reset`, variant: "info" });
      else toastError(e, "reset their two-factor authentication");
    },
  });

  const maxUsers = plan.data?.plan.max_users;
  return (
    <>
      <div className="page-header">
        <h1>People</h1>
        {isAdmin && (
          <button type="button" className="btn-primary" onClick={() => setInviteOpen(true)}>
            Invite people
          </button>
        )}
      </div>
      {plan.data && maxUsers !== undefined && maxUsers >= 0 && (
        <p className="muted small">
          {plan.data.users} of {maxUsers} members on the {plan.data.plan.name} plan
        </p>
      )}
      {members.isPending ? (
        <Loading />
      ) : members.isError ? (
        <ErrorState error={members.error} retry={() => members.refetch()} />
      ) : (
        <div className="table-wrap">
          <table aria-label="Members">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" className="hide-narrow">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col" className="hide-narrow">Timezone</th>
                {isAdmin && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {members.data.map((m) => {
                const self = m.id === me.data?.id;
                const ownerLocked = m.role === "owner" && me.data?.role !== "owner";
                return (
                  <tr key={m.id} data-member-email={m.email}>
                    <td>
                      <span style={{ display: "inline-flex", gap: "0.5rem", alignItems: "center" }}>
                        <Avatar name={m.name} /> {m.name} {self && <span className="badge">you</span>}
                      </span>
                    </td>
                    <td className="hide-narrow">{m.email}</td>
                    <td>
                      {isAdmin && !self && !ownerLocked ? (
                        <select aria-label={`Role of ${m.name}`} value={m.role} onChange={(e) => update.mutate({ m, role: e.target.value as Role })}>
                          {ROLES.filter((r) => r !== "owner" || me.data?.role === "owner").map((r) => (
                            <option key={r} value={r}>
                              {r}
                            </option>
                          ))}
                        </select>
                      ) : (
                        m.role
                      )}
                    </td>
                    <td>{m.status === "active" ? "Active" : <span className="muted">Deactivated</span>}</td>
                    <td className="hide-narrow small">{m.timezone}</td>
                    {isAdmin && (
                      <td>
                        {!self && !ownerLocked &&
                          (m.status === "active" ? (
                            <span className="row-actions">
                              <button type="button" className="btn-small" onClick={() => setSignOutOf(m)} aria-label={`Sign out everywhere: ${m.name}`}>
                                Sign out everywhere
                              </button>
                              <button type="button" className="btn-small" onClick={() => setResetOf(m)} aria-label={`Reset 2FA: ${m.name}`} disabled={resetMfa.isPending}>
                                Reset 2FA
                              </button>
                              <button type="button" className="btn-small btn-danger" onClick={() => setConfirm(m)}>
                                Deactivate
                              </button>
                            </span>
                          ) : (
                            <button type="button" className="btn-small" onClick={() => update.mutate({ m, status: "active" })}>
                              Reactivate
                            </button>
                          ))}
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {isAdmin && <Invitations />}
      <Modal open={inviteOpen} onOpenChange={setInviteOpen} title="Invite people">
        <InviteForm onClose={() => setInviteOpen(false)} canInviteOwner={me.data?.role === "owner"} me={me.data} />
      </Modal>
      <Modal
        open={!!signOutOf}
        onOpenChange={(o) => !o && setSignOutOf(null)}
        title={`Sign ${signOutOf?.name ?? ""} out everywhere?`}
        description="Every session of theirs ends at once, on every browser and device; they can sign in again. Use it when a device is lost or an account may be misused."
      >
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              if (signOutOf) endSessions.mutate(signOutOf);
              setSignOutOf(null);
            }}
          >
            Sign out everywhere
          </button>
          <button type="button" onClick={() => setSignOutOf(null)}>
            Cancel
          </button>
        </div>
      </Modal>
      <Modal
        open={!!resetOf}
        onOpenChange={(o) => !o && setResetOf(null)}
        title={`Reset ${resetOf?.name ?? ""}'s two-factor authentication?`}
        description="For a lost phone: their authenticator app and recovery codes stop working, they are signed out everywhere and told by mail. They sign in with their password and set up two-factor authentication again."
      >
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              if (resetOf) resetMfa.mutate(resetOf);
              setResetOf(null);
            }}
          >
            Reset two-factor authentication
          </button>
          <button type="button" onClick={() => setResetOf(null)}>
            Cancel
          </button>
        </div>
      </Modal>
      <Modal open={!!confirm} onOpenChange={(o) => !o && setConfirm(null)} title={`Deactivate ${confirm?.name ?? ""}?`} description="They are signed out everywhere at once and can no longer sign in. Their tasks and comments stay.">
        <div className="form-actions">
          <button
            type="button"
            className="btn-danger"
            onClick={() => {
              if (confirm) update.mutate({ m: confirm, status: "deactivated" });
              setConfirm(null);
            }}
          >
            Deactivate
          </button>
          <button type="button" onClick={() => setConfirm(null)}>
            Cancel
          </button>
        </div>
      </Modal>
    </>
  );
}

function InviteForm({ onClose, canInviteOwner, me }: { onClose: () => void; canInviteOwner: boolean; me?: Me }) {
  const qc = useQueryClient();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [created, setCreated] = useState<Invitation | null>(null);
  const [copied, setCopied] = useState(false);
  const linkRef = useRef<HTMLInputElement>(null);
  const invite = useMutation({
    mutationFn: () => api<Invitation>("/invitations", { method: "POST", body: { email: email.trim(), role } }),
    onSuccess: (inv) => {
      setCreated(inv);
      void qc.invalidateQueries({ queryKey: keys.invitations });
      void qc.invalidateQueries({ queryKey: keys.onboarding });
    },
  });
  const fe = invite.error instanceof ApiError ? invite.error.fieldErrors() : {};
  // The link the server answers names its configured base URL; the path is what matters here.
  const link = created?.link ?? (created?.token ? `${location.origin}/invite/${created.token}` : "");

  async function copy() {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      linkRef.current?.select();
      setCopied(false);
    }
  }

  if (created) {
    return (
      <div>
        <p className="notice notice-ok" role="status">
          {link ? "Invitation created" : "Invitation sent"} for <strong>{created.email}</strong> as {created.role}.
        </p>
        {link ? (
          <p>This installation sends no mail: hand this link over yourself. It is shown only once and expires {formatDateTime(created.expires_at)}.</p>
        ) : (
          <p>We emailed {created.email} a link to join. It expires {formatDateTime(created.expires_at)}; until then you can revoke it under Pending invitations.</p>
        )}
        {link && (
        <div className="field">
          <label htmlFor="invite-link">Invitation link</label>
          <div className="copy-row">
            <input id="invite-link" ref={linkRef} readOnly value={link} onFocus={(e) => e.currentTarget.select()} data-testid="invite-link" />
            <button type="button" onClick={copy}>
              {copied ? "Copied" : "Copy"}
            </button>
          </div>
        </div>
        )}
        <div className="form-actions">
          <button
            type="button"
            onClick={() => {
              setCreated(null);
              setEmail("");
              setCopied(false);
              invite.reset();
            }}
          >
            Invite someone else
          </button>
          <button type="button" className="btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      </div>
    );
  }
  function onSubmit(e: FormEvent) {
    e.preventDefault();
    invite.mutate();
  }
  const unverified = invite.error instanceof ApiError && invite.error.code === "email_unverified";
  return (
    <form onSubmit={onSubmit} noValidate>
      {unverified && me ? (
        <UnverifiedNotice me={me} because="You can invite people once your address is confirmed." />
      ) : (
        <FormError error={invite.error} fields={["email", "role"]} />
      )}
      <Field label="Email" name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoFocus error={fe.email} />
      <SelectField label="Role" name="role" value={role} onChange={(e) => setRole(e.target.value as Role)} error={fe.role}>
        {ROLES.filter((r) => r !== "owner" || canInviteOwner).map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </SelectField>
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={invite.isPending}>
          {invite.isPending ? "Inviting…" : "Create invitation"}
        </button>
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Invitations() {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  const [resent, setResent] = useState<Invitation | null>(null);
  const list = useInfiniteQuery({
    queryKey: keys.invitations,
    initialPageParam: "",
    queryFn: ({ pageParam, signal }) => api<Page<Invitation>>("/invitations", { query: { limit: 50, cursor: pageParam }, signal }),
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const revoke = useMutation({
    mutationFn: (i: Invitation) => api(`/invitations/${i.id}`, { method: "DELETE" }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.invitations }),
    onError: (e) => toastError(e, "revoke the invitation"),
  });
  const resend = useMutation({
    mutationFn: (i: Invitation) => api<Invitation>(`/invitations/${encodeURIComponent(i.id)}/resend`, { method: "POST" }),
    onSuccess: (inv) => {
      void qc.invalidateQueries({ queryKey: keys.invitations });
      if (inv.link || inv.token) setResent(inv);
      else toast({ title: `Invitation sent again to ${inv.email}`, description: `The earlier link no longer works; the new one expires ${formatDateTime(inv.expires_at)}.`, variant: "success" });
    },
    onError: (e) => toastError(e, "resend the invitation"),
  });
  const pending = (list.data?.pages.flatMap((p) => p.items) ?? []).filter((i) => i.status === "pending");
  return (
    <section aria-labelledby="invites-h">
      <h2 id="invites-h">Pending invitations</h2>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => list.refetch()} />
      ) : pending.length === 0 ? (
        <p className="muted">No pending invitations.</p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Pending invitations">
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col" className="hide-narrow">Expires</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {pending.map((i) => (
                <tr key={i.id}>
                  <td>{i.email}</td>
                  <td>{i.role}</td>
                  <td className="hide-narrow small">{formatDateTime(i.expires_at)}</td>
                  <td>
                    <span className="row-actions">
                      <button type="button" className="btn-small" onClick={() => resend.mutate(i)} disabled={resend.isPending && resend.variables?.id === i.id} aria-label={`Resend the invitation of ${i.email}`}>
                        {resend.isPending && resend.variables?.id === i.id ? "Resending…" : "Resend"}
                      </button>
                      <button type="button" className="btn-small btn-danger" onClick={() => revoke.mutate(i)} aria-label={`Revoke the invitation of ${i.email}`}>
                        Revoke
                      </button>
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <button type="button" onClick={() => list.fetchNextPage()}>
          Load more
        </button>
      )}
      <Modal open={!!resent} onOpenChange={(o) => !o && setResent(null)} title="A new invitation link">
        {resent && <NewInviteLink inv={resent} onClose={() => setResent(null)} />}
      </Modal>
    </section>
  );
}

function NewInviteLink({ inv, onClose }: { inv: Invitation; onClose: () => void }) {
  const ref = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState(false);
  const link = inv.link ?? `${location.origin}/invite/${inv.token}`;
  return (
    <div>
      <p className="notice notice-ok" role="status">
        The invitation of <strong>{inv.email}</strong> was renewed. The earlier link no longer works.
      </p>
      <p>This installation sends no mail: hand this link over yourself. It is shown only once and expires {formatDateTime(inv.expires_at)}.</p>
      <div className="field">
        <label htmlFor="resent-link">Invitation link</label>
        <div className="copy-row">
          <input id="resent-link" ref={ref} readOnly value={link} onFocus={(e) => e.currentTarget.select()} data-testid="resent-link" />
          <button
            type="button"
            onClick={async () => {
              try {
                await navigator.clipboard.writeText(link);
                setCopied(true);
              } catch {
                ref.current?.select();
              }
            }}
          >
            {copied ? "Copied" : "Copy"}
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
