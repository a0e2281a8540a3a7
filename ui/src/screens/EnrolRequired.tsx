// Mandatory enrolment: an Owner or Admin past the workspace's grace period
// without a second factor reaches nothing else (the server answers 403
// mfa_enrolment_required), so the app brings them here, outside the frame.

import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useMe, useWorkspace } from "../api/queries";
import { useSignOut } from "../components/Shell";
import { TwoFactorEnrol } from "../components/TwoFactor";
import { Loading } from "../components/ui";
import { formatDateTime } from "../lib/format";
import { mfaState } from "../lib/security";
import { AuthFrame } from "./AuthFrame";
import { safeNext } from "./SignIn";

export default function EnrolRequired() {
  const me = useMe();
  const ws = useWorkspace();
  const [params] = useSearchParams();
  const nav = useNavigate();
  const qc = useQueryClient();
  const signOut = useSignOut();
  const next = safeNext(params.get("next"));
  // Decided once: turning the factor on updates `me`, and the recovery codes must stay on screen.
  const [alreadyOn] = useState(() => mfaState(me.data).kind === "enabled");
  useEffect(() => {
    document.title = "Set up two-factor authentication · TeamFlow";
  }, []);
  if (!me.data) return <Loading />;
  const state = mfaState(me.data);
  const name = ws.data?.name ?? "This workspace";
  function done() {
    void qc.invalidateQueries();
    nav(next, { replace: true });
  }
  return (
    <AuthFrame title="Set up two-factor authentication">
      {alreadyOn ? (
        <>
          <p className="notice notice-ok">Two-factor authentication is on for your account.</p>
          <div className="form-actions">
            <Link className="btn btn-primary" to={next}>
              Continue to TeamFlow
            </Link>
          </div>
        </>
      ) : (
        <>
          <p className="notice notice-warn" role="status">
            {name} requires Owners and Admins to use two-factor authentication
            {state.kind === "due" || state.kind === "grace" ? ` (since ${formatDateTime(state.deadline.toISOString())})` : ""}. Set it up to continue; it takes a minute.
          </p>
          <TwoFactorEnrol me={me.data} workspaceName={name} onDone={done} />
        </>
      )}
      <p className="auth-alt">
        Signed in as {me.data.email}.{" "}
        <button type="button" className="btn-link" onClick={() => void signOut()}>
          Sign out
        </button>
      </p>
    </AuthFrame>
  );
}
