// Answers that concern the whole app, whichever request got them:
// - 429 rate_limited: one toast per wait ("try again in 40 seconds");
// - 403 mfa_enrolment_required: an Owner or Admin past the second-factor
//   grace period can reach nothing but enrolment, so the app goes there.

import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useRef } from "react";
import { useLocation, useNavigate } from "react-router";
import { formatWait, onAppProblem } from "../api/client";
import { keys } from "../api/queries";
import { RateLimitNotices } from "../lib/mfa";
import { useToast } from "./toast";

export const ENROL_PATH = "/enrol-2fa";

export function enrolUrl(next: string): string {
  return next && next !== "/" && !next.startsWith(ENROL_PATH) ? `${ENROL_PATH}?next=${encodeURIComponent(next)}` : ENROL_PATH;
}

export function AppProblems() {
  const { toast } = useToast();
  const nav = useNavigate();
  const qc = useQueryClient();
  const loc = useLocation();
  const where = useRef(loc);
  where.current = loc;
  const notices = useMemo(() => new RateLimitNotices(), []);
  useEffect(
    () =>
      onAppProblem((e) => {
        if (e.isRateLimited) {
          if (notices.shouldAnnounce(e.retryAfter)) {
            toast({
              variant: "error",
              title: "Too many requests",
              description: e.retryAfter ? `Please wait ${formatWait(e.retryAfter)} and try again.` : "Please wait a moment and try again.",
            });
          }
          return;
        }
        const { pathname, search } = where.current;
        if (e.code === "mfa_enrolment_required" && !pathname.startsWith(ENROL_PATH)) {
          void qc.invalidateQueries({ queryKey: keys.me });
          nav(enrolUrl(pathname + search), { replace: true });
        }
      }),
    [toast, nav, qc, notices],
  );
  return null;
}
