// Account notices above every signed-in screen: an email address still to
// confirm (with "send a new link"), and the deadline by which an Owner or
// Admin must turn on two-factor authentication.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, ApiError } from "../api/client";
import { keys } from "../api/queries";
import type { Me } from "../api/types";
import { formatDateTime } from "../lib/format";
import { mfaState } from "../lib/mfa";
import { useToast } from "./toast";

/** POST /me/verify-email, with its answers worded for people. */
export function useResendVerification(me: Pick<Me, "email"> | undefined) {
  const qc = useQueryClient();
  const { toast, toastError } = useToast();
  return useMutation({
    mutationFn: () => api("/me/verify-email", { method: "POST" }),
    onSuccess: () => toast({ variant: "success", title: "Confirmation link sent", description: `Open the link we sent to ${me?.email ?? "your address"} within 24 hours.` }),
    onError: (e) => {
      // Already confirmed, or no mail here (addresses then count as confirmed): the banner is out of date.
      if (e instanceof ApiError && (e.code === "already_verified" || e.code === "mail_unavailable")) {
        void qc.invalidateQueries({ queryKey: keys.me });
        if (e.code === "already_verified") toast({ variant: "success", title: "Your email address is already confirmed" });
        return;
      }
      if (!(e instanceof ApiError && e.isRateLimited)) toastError(e, "send the link");
    },
  });
}

export function UnverifiedNotice({ me, because }: { me: Me; because?: string }) {
  const resend = useResendVerification(me);
  return (
    <div className="notice notice-warn banner" data-testid="unverified-banner">
      <span>
        <strong>Please confirm your email address.</strong> {because ?? "Until you do, you cannot invite people."} We sent a link to {me.email}.
      </span>{" "}
      <button type="button" className="btn-small" disabled={resend.isPending} onClick={() => resend.mutate()}>
        {resend.isPending ? "Sending…" : "Send a new link"}
      </button>
    </div>
  );
}

export function SecurityBanners({ me, workspaceName }: { me: Me; workspaceName?: string }) {
  const mfa = mfaState(me);
  return (
    <>
      {me.email_verified === false && <UnverifiedNotice me={me} />}
      {mfa.kind === "grace" && (
        <div className="notice notice-warn banner" data-testid="mfa-banner">
          <span>
            <strong>Turn on two-factor authentication by {formatDateTime(mfa.deadline.toISOString())}.</strong> {workspaceName ?? "This workspace"} requires it of Owners and
            Admins; after that date you can reach nothing else until it is on.
          </span>{" "}
          <Link className="btn btn-small" to="/profile#security">
            Set it up now
          </Link>
        </div>
      )}
    </>
  );
}
