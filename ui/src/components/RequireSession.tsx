import { useQueryClient } from "@tanstack/react-query";
import { useEffect, type ReactNode } from "react";
import { Navigate, useLocation, useNavigate } from "react-router";
import { ApiError, onSessionEnded } from "../api/client";
import { clearSession, useMe } from "../api/queries";
import { mfaState } from "../lib/mfa";
import { enrolUrl } from "./AppProblems";
import { ErrorState, Loading } from "./ui";

/**
 * Renders its children for a signed-in user; sends everyone else to sign-in,
 * and an Owner or Admin past the second-factor deadline to enrolment (unless
 * this is the enrolment screen).
 */
export function RequireSession({ children, enrolment = false }: { children: ReactNode; enrolment?: boolean }) {
  const me = useMe();
  const loc = useLocation();
  const nav = useNavigate();
  const qc = useQueryClient();
  const next = loc.pathname + loc.search;

  useEffect(
    () =>
      onSessionEnded(() => {
        clearSession(qc);
        nav(`/signin?next=${encodeURIComponent(window.location.pathname + window.location.search)}&expired=1`, { replace: true });
      }),
    [nav, qc],
  );

  if (me.isPending) return <Loading label="Opening TeamFlow…" />;
  if (me.isError) {
    if (me.error instanceof ApiError && (me.error.status === 401 || me.error.status === 403)) {
      return <Navigate to={next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`} replace />;
    }
    return <ErrorState error={me.error} retry={() => me.refetch()} />;
  }
  if (!enrolment && mfaState(me.data).kind === "due") return <Navigate to={enrolUrl(next)} replace />;
  return <>{children}</>;
}
