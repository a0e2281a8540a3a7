import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter, Route, Routes, useLocation } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { api } from "../api/client";
import { SignIn } from "../screens/SignIn";
import { AppProblems } from "./AppProblems";
import { MfaStep } from "./MfaStep";
import { RequireSession } from "./RequireSession";
import { ToastProvider } from "./toast";

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;
const json = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

let calls: { url: string; method: string; body: unknown }[] = [];
function serve(h: Handler) {
  calls = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit = {}) => {
      calls.push({ url, method: init.method ?? "GET", body: init.body ? JSON.parse(String(init.body)) : undefined });
      return h(url, init);
    }),
  );
}

function Where() {
  const l = useLocation();
  return <output data-testid="where">{l.pathname + l.search}</output>;
}

function wrap(ui: ReactNode, path = "/") {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter initialEntries={[path]}>
        <ToastProvider>
          <AppProblems />
          {ui}
          <Where />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

beforeEach(() => {
  document.cookie = "tf_csrf=c; path=/";
  localStorage.clear();
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("sign-in with a second factor", () => {
  it("asks for the code after the password and completes with POST /auth/mfa", async () => {
    serve((url) => {
      if (url.endsWith("/setup")) return json(200, { needed: false, mode: "cloud" });
      if (url.endsWith("/auth/login")) return json(200, { mfa_required: true, mfa_token: "tfm_x_y" });
      if (url.endsWith("/auth/mfa")) return json(200, { token_type: "Cookie", mfa_required: false });
      return json(404, { status: 404, code: "not_found" });
    });
    wrap(
      <Routes>
        <Route path="/signin" element={<SignIn />} />
        <Route path="*" element={<p>home</p>} />
      </Routes>,
      "/signin?next=%2Fprojects",
    );
    fireEvent.change(screen.getByLabelText("Workspace", { exact: false }), { target: { value: "Acme" } });
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "ada@example.com" } });
    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "secret secret" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await screen.findByRole("heading", { name: "Two-step verification" });
    fireEvent.change(screen.getByLabelText("Authentication code"), { target: { value: "123 456" } });
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    await waitFor(() => expect(screen.getByTestId("where").textContent).toBe("/projects"));
    const mfa = calls.find((c) => c.url.endsWith("/auth/mfa"))!;
    expect(mfa.body).toEqual({ mfa_token: "tfm_x_y", code: "123456", session_cookie: true });
    expect(localStorage.getItem("teamflow.lastWorkspace")).toBe("acme");
  });

  it("checks the code's shape locally, sends recovery codes, and shows a refused code at its field", async () => {
    serve(() => json(401, { status: 401, code: "invalid_mfa", detail: "the code is not valid, or the sign-in expired; sign in again" }));
    const done = vi.fn();
    wrap(<MfaStep mfaToken="tfm_t" onSignedIn={done} onRestart={() => {}} />);
    fireEvent.change(screen.getByLabelText("Authentication code"), { target: { value: "12345" } });
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    expect(screen.getByText("Enter the 6-digit code your authenticator app shows.")).toBeTruthy();
    expect(calls).toHaveLength(0);
    fireEvent.click(screen.getByRole("button", { name: "Use a recovery code" }));
    const input = screen.getByLabelText("Recovery code");
    fireEvent.change(input, { target: { value: " ABCDE-FGHIJ-KLMNOP " } });
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    await screen.findByText("That recovery code is not valid or was used already.");
    expect(calls[0].body).toEqual({ mfa_token: "tfm_t", recovery_code: "abcde-fghij-klmnop", session_cookie: true });
    expect(screen.getByLabelText("Recovery code").getAttribute("aria-invalid")).toBe("true");
    expect(done).not.toHaveBeenCalled();
  });

  it("hides the mail options after the server says it sends no mail", async () => {
    serve((url) => {
      if (url.endsWith("/setup")) return json(200, { needed: false, mode: "onprem" });
      if (url.endsWith("/auth/magic-link")) return json(409, { status: 409, code: "mail_unavailable", detail: "this installation sends no mail" });
      return json(404, { status: 404, code: "not_found" });
    });
    wrap(
      <Routes>
        <Route path="/signin" element={<SignIn />} />
      </Routes>,
      "/signin",
    );
    expect(screen.getByRole("link", { name: "Forgot your password?" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Email me a sign-in link" }));
    await screen.findByRole("heading", { name: "Sign in with an email link" });
    fireEvent.change(screen.getByLabelText("Workspace", { exact: false }), { target: { value: "acme" } });
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "ada@example.com" } });
    fireEvent.click(screen.getByRole("button", { name: "Email me a link" }));
    await screen.findByText(/This installation sends no email/);
    expect(screen.queryByRole("button", { name: "Email me a sign-in link" })).toBeNull();
    expect(screen.queryByRole("link", { name: "Forgot your password?" })).toBeNull();
    expect(screen.getByLabelText("Password")).toBeTruthy();
  });
});

describe("app-wide answers", () => {
  it("a 429 anywhere shows one toast with the wait", async () => {
    serve(() => json(429, { status: 429, code: "rate_limited", detail: "slow down" }, { "Retry-After": "42" }));
    wrap(<p>screen</p>);
    await act(async () => {
      await api("/projects").catch(() => {});
      await api("/members").catch(() => {});
    });
    await screen.findByText("Too many requests");
    expect(screen.getByText("Please wait 42 seconds and try again.")).toBeTruthy();
    expect(screen.getAllByText("Too many requests")).toHaveLength(1);
  });

  it("a 403 mfa_enrolment_required takes the user to enrolment, keeping where they were", async () => {
    serve(() => json(403, { status: 403, code: "mfa_enrolment_required", detail: "enrol" }));
    wrap(<p>screen</p>, "/projects?x=1");
    await act(async () => {
      await api("/projects").catch(() => {});
    });
    await waitFor(() => expect(screen.getByTestId("where").textContent).toBe("/enrol-2fa?next=%2Fprojects%3Fx%3D1"));
  });

  it("an Owner past the deadline is sent to enrolment; the enrolment screen itself is let through", async () => {
    const me = { id: "u", name: "Ada", email: "a@x", role: "owner", mfa_enabled: false, mfa_required_by: "2000-01-01T00:00:00Z" };
    serve((url) => (url.endsWith("/me") ? json(200, me) : json(404, {})));
    wrap(
      <Routes>
        <Route path="/enrol-2fa" element={<RequireSession enrolment><p>enrol screen</p></RequireSession>} />
        <Route path="*" element={<RequireSession><p>app</p></RequireSession>} />
      </Routes>,
      "/people",
    );
    await screen.findByText("enrol screen");
    expect(screen.getByTestId("where").textContent).toBe("/enrol-2fa?next=%2Fpeople");
    expect(screen.queryByText("app")).toBeNull();
  });
});
