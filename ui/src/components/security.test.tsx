import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter, Route, Routes, useLocation } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { api } from "../api/client";
import People, { canResetMfa } from "../screens/People";
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
    expect(await screen.findByRole("link", { name: "Forgot your password?" })).toBeTruthy();
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

  it("offers the mail options only when GET /setup says the server sends mail", async () => {
    serve((url) => (url.endsWith("/setup") ? json(200, { needed: false, mode: "cloud", mail: false }) : json(404, { status: 404, code: "not_found" })));
    const { unmount } = wrap(
      <Routes>
        <Route path="/signin" element={<SignIn />} />
      </Routes>,
      "/signin",
    );
    // The setup answer is in once the cloud sign-up link shows.
    await screen.findByRole("link", { name: "Create a workspace" });
    expect(screen.queryByRole("button", { name: "Email me a sign-in link" })).toBeNull();
    expect(screen.queryByRole("link", { name: "Forgot your password?" })).toBeNull();
    unmount();
  });

  it("trusts mail: true over a 409 remembered from before", async () => {
    localStorage.setItem("teamflow.mailOff", String(Date.now()));
    serve((url) => (url.endsWith("/setup") ? json(200, { needed: false, mode: "cloud", mail: true }) : json(404, { status: 404, code: "not_found" })));
    wrap(
      <Routes>
        <Route path="/signin" element={<SignIn />} />
      </Routes>,
      "/signin",
    );
    expect(await screen.findByRole("link", { name: "Forgot your password?" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Email me a sign-in link" })).toBeTruthy();
    localStorage.removeItem("teamflow.mailOff");
  });
});

describe("people: two-factor status", () => {
  const member = (id: string, name: string, role: string, extra: Record<string, unknown> = {}) => ({
    id, name, email: `${id}@x.test`, role, status: "active", timezone: "UTC", work_hours: { start: "09:00", end: "17:00", days: [1, 2, 3, 4, 5] },
    created_at: "2030-01-01T00:00:00Z", updated_at: "2030-01-01T00:00:00Z", version: 1, ...extra,
  });

  it("an Owner sees a 2FA badge and Reset 2FA only for members who have it on", async () => {
    serve((url) => {
      if (url.endsWith("/me")) return json(200, { ...member("ada", "Ada", "owner"), mfa_enabled: true });
      if (url.includes("/members")) return json(200, { items: [member("ada", "Ada", "owner", { mfa_enabled: true }), member("mel", "Mel", "member", { mfa_enabled: true }), member("bob", "Bob", "member", { mfa_enabled: false })] });
      if (url.includes("/invitations")) return json(200, { items: [] });
      if (url.includes("/workspace/plan")) return json(404, { status: 404, code: "not_found" });
      return json(404, { status: 404, code: "not_found" });
    });
    wrap(<People />);
    const mel = await screen.findByRole("button", { name: "Reset 2FA: Mel" });
    expect(mel).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Reset 2FA: Bob" })).toBeNull();
    expect(screen.getByRole("button", { name: "Sign out everywhere: Bob" })).toBeTruthy();
    const badges = screen.getAllByTestId("mfa-badge").map((b) => b.closest("tr")?.getAttribute("data-member-email"));
    expect(badges).toEqual(["ada@x.test", "mel@x.test"]);
  });

  it("a Member's list carries no mfa_enabled: no badges and no admin actions", async () => {
    serve((url) => {
      if (url.endsWith("/me")) return json(200, member("mel", "Mel", "member"));
      if (url.includes("/members")) return json(200, { items: [member("ada", "Ada", "owner"), member("mel", "Mel", "member")] });
      return json(404, { status: 404, code: "not_found" });
    });
    wrap(<People />);
    await screen.findByText("ada@x.test");
    expect(screen.queryAllByTestId("mfa-badge")).toHaveLength(0);
    expect(screen.queryByRole("button", { name: /Reset 2FA/ })).toBeNull();
  });

  it("a server that does not say keeps Reset 2FA for everyone (its refusal is shown)", () => {
    expect(canResetMfa({})).toBe(true);
    expect(canResetMfa({ mfa_enabled: true })).toBe(true);
    expect(canResetMfa({ mfa_enabled: false })).toBe(false);
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
