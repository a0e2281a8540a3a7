// The account-security browser test: a real `teamflow serve --mode cloud`
// (with SMTP settings pointing at an SMTP server inside this test, when the
// binary has them), headless Chromium, and Node's own HTTP client for the
// API-key checks. One story: sign up → confirm the email from the mail →
// enrol two-factor authentication (the QR code is decoded and the codes are
// computed here, RFC 6238) → sign in with a code, then with a recovery code
// (once) → sessions: revoke the other browser, sign out the rest → a
// read-only API key reads and cannot write → the audit log's upgrade hint,
// then its entries → an Admin invited by mail is sent to enrolment when the
// grace period is 0 → sign a member out everywhere → password reset and
// magic link from the mail → 2FA turned off → rate-limit toast → phone width.
//
//   TEAMFLOW_BIN=/abs/path/bin/teamflow node e2e/security.mjs   (npm run e2e runs it)

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import decodeQR from "qr/decode.js";
import { apiCall, axeCheck, axeLog, expect, launchBrowser, screenshot, startServer, Steps } from "./lib.mjs";
import { startMailCatcher } from "./mail.mjs";
import { Authenticator, hotp } from "./totp.mjs";

const t0 = Date.now();
const bin = process.env.TEAMFLOW_BIN;
if (!bin) throw new Error("set TEAMFLOW_BIN to the teamflow binary");

// Mail flows need the binary's SMTP flags; without them those steps are skipped, with the reason printed.
let mailFlags = false;
try {
  mailFlags = /--mail-host\b/.test(execFileSync(bin, ["serve", "--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
} catch (e) {
  mailFlags = /--mail-host\b/.test(String(e.stdout ?? ""));
}
const mail = mailFlags ? await startMailCatcher() : null;
const extraArgs = mail ? ["--mail-host", "127.0.0.1", "--mail-port", String(mail.port), "--mail-security", "none", "--mail-from", "TeamFlow <teamflow@example.test>"] : [];
const srv = await startServer({ extraArgs });
const base = srv.url;
const browser = await launchBrowser();
const steps = new Steps();
const skipped = [];
const viewport = { width: 1280, height: 800 };
const newContext = (o = {}) => browser.newContext({ baseURL: base, viewport, locale: "en-GB", timezoneId: "Europe/Berlin", reducedMotion: "reduce", ...o });
const ctx = await newContext({ acceptDownloads: true });
await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
const page = await ctx.newPage();
page.setDefaultTimeout(10_000);
const pageErrors = [];
const watch = (p) => p.on("pageerror", (e) => pageErrors.push(e.message));
watch(page);

const owner = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery", workspace: "Acme Security", slug: "acmesec" };
const bob = { name: "Bob Admin", email: "bob@example.com", password: "another good secret" };
const state = {};

steps.onFail = async (name) => {
  const file = `/tmp/teamflow-e2e-failure-${name.replace(/\W+/g, "-")}.png`;
  await page.screenshot({ path: file, fullPage: true });
  console.log(`      screenshot of the failure: ${file}; current URL ${page.url()}`);
};

/** A step that needs mail: skipped (with the reason) when the binary has no SMTP flags. */
async function mailStep(name, fn) {
  if (!mail) {
    skipped.push(name);
    console.log(`  - ${name} (skipped: \`teamflow serve --help\` has no --mail-host, so the server cannot send mail)`);
    return;
  }
  await steps.step(name, fn);
}

const toastTitled = (p, text) => p.locator(".toast-title", { hasText: text });
const navLink = (p, name) => p.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
const heading = (p, name) => p.getByRole("heading", { name, exact: true });

async function fillSignIn(p, who, password = who.password) {
  await p.goto("/signin");
  await heading(p, "Sign in").waitFor();
  await p.getByLabel("Workspace").fill(owner.slug);
  await p.getByLabel("Email", { exact: true }).fill(who.email);
  await p.getByLabel("Password", { exact: true }).fill(password);
  await p.getByRole("button", { name: "Sign in", exact: true }).click();
}

async function signOut(p, name) {
  await p.getByRole("button", { name: new RegExp(`${name}.*account menu`) }).click();
  await p.getByRole("menuitem", { name: "Sign out" }).click();
  await heading(p, "Sign in").waitFor();
}

async function openSecurity(p, name) {
  await p.getByRole("button", { name: new RegExp(`${name}.*account menu`) }).click();
  await p.getByRole("menuitem", { name: "Security" }).click();
  await p.getByRole("heading", { name: "Security", exact: true }).waitFor();
}

/** Decodes the QR code an element shows: its screenshot, read back to pixels in a blank page, decoded by qr/decode.js. */
async function decodeQrIn(locator) {
  const png = await locator.screenshot();
  const blank = await browser.newPage();
  try {
    const img = await blank.evaluate(async (b64) => {
      const im = new Image();
      im.src = "data:image/png;base64," + b64;
      await im.decode();
      const c = document.createElement("canvas");
      c.width = im.width;
      c.height = im.height;
      const g = c.getContext("2d");
      g.drawImage(im, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height);
      return { width: d.width, height: d.height, data: Array.from(d.data) };
    }, png.toString("base64"));
    return decodeQR({ width: img.width, height: img.height, data: Uint8Array.from(img.data) });
  } finally {
    await blank.close();
  }
}

/** Goes through the enrolment form (password → key → code → recovery codes); returns {auth, codes}. */
async function enrol(p, who, { wrongPasswordFirst = false, decode = false } = {}) {
  if (wrongPasswordFirst) {
    await p.getByLabel("Your password").fill("not my password");
    await p.getByRole("button", { name: "Continue" }).click();
    await p.getByText("the password is not correct").waitFor();
  }
  await p.getByLabel("Your password").fill(who.password);
  await p.getByRole("button", { name: "Continue" }).click();
  const qr = p.getByRole("img", { name: /QR code to add TeamFlow/ });
  await qr.waitFor();
  const secret = (await p.getByTestId("totp-secret").textContent()).replace(/\s+/g, "");
  expect(/^[A-Z2-7]{16,}$/.test(secret), `a base32 setup key: ${secret}`);
  if (decode) {
    const url = await decodeQrIn(qr);
    const u = new URL(url);
    expect(u.protocol === "otpauth:" && u.searchParams.get("secret") === secret && decodeURIComponent(u.pathname).includes(who.email), `the QR code is the otpauth URL of this key: ${url}`);
    state.otpauth = url;
    await axeCheck(p, "profile: 2FA QR code");
    await screenshot(p, "security-enrol-qr");
  }
  const auth = new Authenticator(secret);
  await p.getByLabel("Enter the 6-digit code the app shows").fill(await auth.code());
  await p.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  const list = p.getByTestId("recovery-codes");
  await list.waitFor();
  const codes = (await list.locator("li").allTextContents()).map((s) => s.trim());
  expect(codes.length === 10 && codes.every((c) => /^[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]+$/.test(c)), `ten recovery codes: ${codes}`);
  return { auth, codes };
}

async function finishRecovery(p) {
  await p.getByLabel("I have saved my recovery codes").check();
  await p.getByRole("button", { name: "Done", exact: true }).click();
}

async function secondStepWithCode(p, code) {
  await heading(p, "Two-step verification").waitFor();
  await p.getByLabel("Authentication code").fill(code);
  await p.getByRole("button", { name: "Verify" }).click();
}

async function apiFetch(method, path, token, body) {
  const res = await fetch(base + "/api/v1" + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

console.log(`teamflow at ${base}${mail ? `, SMTP catcher at 127.0.0.1:${mail.port}` : " (no mail: the binary has no --mail-host)"}`);

await steps.step("the test's TOTP matches RFC 6238's reference values", async () => {
  const key = Buffer.from("12345678901234567890");
  for (const [t, want] of [
    [59, "94287082"],
    [1111111109, "07081804"],
    [1234567890, "89005924"],
    [20000000000, "65353130"],
  ]) {
    expect(hotp(key, Math.floor(t / 30), 8) === want, `TOTP at ${t}`);
  }
});

await steps.step("sign up: the 2FA deadline banner (and, with mail, the unconfirmed-email banner) show (axe)", async () => {
  await page.goto("/signup");
  await page.getByLabel("Workspace name").fill(owner.workspace);
  await page.getByLabel("Workspace address").fill(owner.slug);
  await page.getByLabel("Your name").fill(owner.name);
  await page.getByLabel("Email").fill(owner.email);
  await page.getByLabel("Password").fill(owner.password);
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  const banner = page.getByTestId("mfa-banner");
  await banner.waitFor();
  expect(/Turn on two-factor authentication by .*20\d\d/.test(await banner.textContent()), `deadline banner: ${await banner.textContent()}`);
  if (mail) await page.getByTestId("unverified-banner").waitFor();
  await axeCheck(page, "home with security banners");
});

await mailStep("unconfirmed email: inviting is refused with a resend; the mailed link confirms it (axe)", async () => {
  const before = mail.count();
  await navLink(page, "People").click();
  await page.getByRole("button", { name: "Invite people" }).click();
  const dialog = page.getByRole("dialog", { name: "Invite people" });
  await dialog.getByLabel("Email").fill(bob.email);
  await dialog.getByRole("button", { name: "Create invitation" }).click();
  await dialog.getByText("You can invite people once your address is confirmed").waitFor();
  await dialog.getByRole("button", { name: "Send a new link" }).click();
  await toastTitled(page, "Confirmation link sent").waitFor();
  const msg = await mail.waitFor(owner.email, /\/verify-email\?token=/, { since: before });
  await page.keyboard.press("Escape");
  const path = mail.linkIn(msg, base, "/verify-email?token=");
  await page.goto(path);
  await page.getByText("Your email address is confirmed").waitFor();
  await axeCheck(page, "email confirmed");
  await screenshot(page, "verify-email");
  await page.goto(path);
  await page.getByText("This confirmation link is not valid").waitFor();
  await page.goto("/");
  await page.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  expect((await page.getByTestId("unverified-banner").count()) === 0, "the banner is gone once confirmed");
});

await steps.step("enrol 2FA from the profile: QR code, setup key, recovery codes copied and downloaded (axe)", async () => {
  await openSecurity(page, owner.name);
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  const { auth, codes } = await enrol(page, owner, { wrongPasswordFirst: true, decode: true });
  state.auth = auth;
  state.codes = codes;
  await axeCheck(page, "profile: recovery codes");
  await screenshot(page, "security-recovery-codes");
  await page.getByRole("button", { name: "Copy codes" }).click();
  await page.getByRole("button", { name: "Copied" }).waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  expect(codes.every((c) => clip.includes(c)), "the clipboard holds every code");
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download as a text file" }).click();
  const d = await download;
  const file = readFileSync(await d.path(), "utf8");
  expect(d.suggestedFilename().endsWith(".txt") && codes.every((c) => file.includes(c)), `the download holds every code (${d.suggestedFilename()})`);
  await finishRecovery(page);
  await page.getByRole("group", { name: "Two-factor authentication" }).getByText("On", { exact: true }).waitFor();
  await page.getByRole("button", { name: "Turn off two-factor authentication" }).waitFor();
  expect((await page.getByTestId("mfa-banner").count()) === 0, "no deadline banner once enrolled");
  const me = await apiCall(ctx, base, "GET", "/me");
  expect(me.json.mfa_enabled === true && !me.json.mfa_required_by, `me: ${JSON.stringify(me.json)}`);
  await axeCheck(page, "profile: security");
  await screenshot(page, "security");
});

await steps.step("sign out, then sign in with a wrong and a right code from the app (axe)", async () => {
  await signOut(page, owner.name);
  await fillSignIn(page, owner, "wrong password");
  await page.getByRole("alert").filter({ hasText: "not correct" }).waitFor();
  await page.getByLabel("Password", { exact: true }).fill(owner.password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await heading(page, "Two-step verification").waitFor();
  await axeCheck(page, "sign-in: second step");
  await screenshot(page, "sign-in-2fa");
  await page.getByLabel("Authentication code").fill("12345");
  await page.getByRole("button", { name: "Verify" }).click();
  await page.getByText("Enter the 6-digit code your authenticator app shows.").waitFor();
  await page.getByLabel("Authentication code").fill(state.auth.reused());
  await page.getByRole("button", { name: "Verify" }).click();
  await page.getByText("That code is not valid").waitFor();
  await page.getByLabel("Authentication code").fill(await state.auth.code());
  await page.getByRole("button", { name: "Verify" }).click();
  await page.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
});

await steps.step("a recovery code signs in a second browser once; used again it is refused", async () => {
  state.ctx2 = await newContext({ viewport: { width: 1100, height: 800 } });
  state.page2 = await state.ctx2.newPage();
  state.page2.setDefaultTimeout(10_000);
  watch(state.page2);
  const p2 = state.page2;
  await fillSignIn(p2, owner);
  await heading(p2, "Two-step verification").waitFor();
  await p2.getByRole("button", { name: "Use a recovery code" }).click();
  await p2.getByLabel("Recovery code").fill(state.codes[0].toUpperCase());
  await p2.getByRole("button", { name: "Verify" }).click();
  await p2.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  const c3 = await newContext();
  const p3 = await c3.newPage();
  p3.setDefaultTimeout(10_000);
  watch(p3);
  await fillSignIn(p3, owner);
  await heading(p3, "Two-step verification").waitFor();
  await p3.getByRole("button", { name: "Use a recovery code" }).click();
  await p3.getByLabel("Recovery code").fill(state.codes[0]);
  await p3.getByRole("button", { name: "Verify" }).click();
  await p3.getByText("That recovery code is not valid or was used already.").waitFor();
  await c3.close();
});

await steps.step("sessions: the list shows both browsers; signing out the other one ends it (axe)", async () => {
  await openSecurity(page, owner.name);
  const table = page.getByRole("table", { name: "Your sessions" });
  await table.waitFor();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-session-id]').length === 2);
  await table.locator('tr[data-current="true"]').getByText("This device").waitFor();
  const other = table.locator('tr[data-current="false"]');
  expect(/Headless Chrome on Linux|Chrome on Linux/.test(await other.textContent()), `the other session names its browser: ${await other.textContent()}`);
  // It signed in with a recovery code: newer servers say so (password+recovery_code), older ones said password+totp.
  expect(/Password and (recovery code|authenticator app)/.test(await other.textContent()), `and how it signed in: ${await other.textContent()}`);
  await axeCheck(page, "profile: sessions");
  const revoked = page.waitForResponse((r) => r.request().method() === "DELETE" && r.url().includes("/api/v1/me/sessions/"));
  await other.getByRole("button", { name: /^Sign out / }).click();
  expect((await revoked).status() === 204, "the session was revoked");
  await toastTitled(page, "Session signed out").waitFor();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-session-id]').length === 1);
  await state.page2.reload();
  await state.page2.waitForURL(/\/signin/);
  await heading(state.page2, "Sign in").waitFor();
});

await steps.step("“sign out other sessions” ends every session but this one", async () => {
  // A third session, from Node, completed with another recovery code.
  const login = await apiFetch("POST", "/auth/login", null, { workspace: owner.slug, email: owner.email, password: owner.password });
  expect(login.status === 200 && login.json.mfa_required, `login asks for the second factor: ${JSON.stringify(login.json)}`);
  const done = await apiFetch("POST", "/auth/mfa", null, { mfa_token: login.json.mfa_token, recovery_code: state.codes[1] });
  expect(done.status === 200 && done.json.access_token, `a recovery code completes it: ${done.status}`);
  expect((await apiFetch("GET", "/me", done.json.access_token)).status === 200, "the Node session works");
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-session-id]').length === 2);
  await page.getByRole("button", { name: "Sign out other sessions" }).click();
  const dialog = page.getByRole("dialog", { name: "Sign out your other sessions?" });
  const posted = page.waitForResponse((r) => r.url().endsWith("/api/v1/me/sessions/revoke-others"));
  await dialog.getByRole("button", { name: "Sign out other sessions" }).click();
  expect((await posted).status() === 204, "revoke-others answered 204");
  await toastTitled(page, "Other sessions signed out").waitFor();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-session-id]').length === 1);
  expect((await apiFetch("GET", "/me", done.json.access_token)).status === 401, "the Node session is over");
  expect((await apiCall(ctx, base, "GET", "/me")).status === 200, "this one goes on");
});

await steps.step("API keys: a read-only key reads and cannot write; revoked, it stops working (axe)", async () => {
  await page.getByRole("button", { name: "Create API key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.getByLabel("Name").fill("Reporting");
  expect(await dialog.getByRole("radio", { name: "Read only" }).isChecked(), "read only is the default");
  await axeCheck(page, "profile: create API key");
  await dialog.getByRole("button", { name: "Create key" }).click();
  const tokenInput = dialog.getByTestId("api-key-token");
  await tokenInput.waitFor();
  await dialog.getByText("you won't see it again").waitFor();
  const token = await tokenInput.inputValue();
  expect(/^tfk_/.test(token), `an API key: ${token.slice(0, 8)}…`);
  await dialog.getByRole("button", { name: "Copy", exact: true }).click();
  await dialog.getByRole("button", { name: "Copied" }).waitFor();
  expect((await page.evaluate(() => navigator.clipboard.readText())) === token, "the key was copied");
  await axeCheck(page, "profile: API key shown once");
  await screenshot(page, "api-key-created");
  await dialog.getByRole("button", { name: "Done" }).click();
  const row = page.locator('tr[data-key-name="Reporting"]');
  await row.getByText("Read only").waitFor();
  const read = await apiFetch("GET", "/projects", token);
  expect(read.status === 200 && Array.isArray(read.json.items), `the key reads: ${read.status}`);
  const write = await apiFetch("POST", "/projects", token, { name: "Made by a read-only key" });
  expect(write.status === 403 && write.json.code === "insufficient_scope", `the key cannot write: ${write.status} ${write.json?.code}`);
  await page.reload();
  await row.getByText("Never").first().waitFor(); // never expires
  expect(!(await row.textContent()).includes("Never used") && (await row.locator("td").nth(3).textContent()) !== "Never", "last use recorded");
  await row.getByRole("button", { name: "Revoke the API key Reporting" }).click();
  await page.getByRole("dialog", { name: /Revoke “Reporting”/ }).getByRole("button", { name: "Revoke key" }).click();
  await toastTitled(page, "revoked").waitFor();
  await page.getByText("No API keys yet").waitFor();
  expect((await apiFetch("GET", "/projects", token)).status === 401, "a revoked key is refused");
  // A read-write key limited to one project, with an expiry date.
  const proj = await apiCall(ctx, base, "POST", "/projects", { name: "Ops" });
  expect(proj.status === 201, `project created: ${proj.status}`);
  await page.reload();
  await page.getByRole("button", { name: "Create API key" }).click();
  const d2 = page.getByRole("dialog", { name: "Create an API key" });
  await d2.getByLabel("Name").fill("Deploy bot");
  await d2.getByRole("radio", { name: "Read and write" }).check();
  await d2.getByRole("radio", { name: "Only these projects" }).check();
  await d2.getByRole("checkbox", { name: "Ops" }).check();
  await d2.getByLabel("Expires on (optional)").fill("2031-12-31");
  const created = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/api/v1/api-keys"));
  await d2.getByRole("button", { name: "Create key" }).click();
  const sent = JSON.parse((await created).request().postData());
  expect(
    sent.scopes.join() === "read,write" && sent.projects.join() === proj.json.id && /^2031-12-31T/.test(sent.expires_at),
    `the key's body: ${JSON.stringify(sent)}`,
  );
  await d2.getByTestId("api-key-token").waitFor();
  await d2.getByRole("button", { name: "Done" }).click();
  const row2 = page.locator('tr[data-key-name="Deploy bot"]');
  await row2.getByText("Read and write").waitFor();
  await row2.getByText("Ops").waitFor();
  await row2.getByText(/31 Dec 2031/).waitFor();
});

await steps.step("audit log: the Free plan shows the upgrade hint; on Professional, the entries (axe)", async () => {
  await navLink(page, "Audit log").click();
  const hint = page.getByTestId("plan-feature-hint");
  await hint.waitFor();
  await hint.getByText("The audit log is not part of the Free plan").waitFor();
  await hint.getByText(/Professional and Enterprise/).waitFor();
  await axeCheck(page, "audit log: upgrade hint");
  await screenshot(page, "audit-upgrade");
  const op = readFileSync(join(srv.data, "operator.token"), "utf8").trim();
  const set = await apiFetch("PUT", `/platform/workspaces/${owner.slug}/plan`, op, { plan: "professional" });
  expect(set.status === 200, `the operator moved the workspace to Professional: ${set.status}`);
  await page.reload();
  const table = page.getByRole("table", { name: "Audit log" });
  await table.waitFor();
  for (const action of ["mfa.enrol", "apikey.create", "apikey.revoke", "auth.login_failed", "auth.sessions_revoked"]) {
    await table.locator(`tr[data-action="${action}"]`).first().waitFor();
  }
  const failed = table.locator('tr[data-action="auth.login_failed"]').first();
  expect((await failed.textContent()).includes("Failed"), "a failed sign-in reads as failed");
  const enrolled = table.locator('tr[data-action="mfa.enrol"]').first();
  expect((await enrolled.textContent()).includes(owner.name), "entries name their actor");
  await enrolled.getByRole("button", { name: /Details of entry/ }).click();
  const hash = await page.locator(".audit-detail .hash").first().textContent();
  expect(/^[0-9a-f]{64}$/.test(hash.trim()), `an entry shows its chain hash: ${hash}`);
  await axeCheck(page, "audit log");
  await screenshot(page, "audit");
});

await steps.step("invite an Admin (by mail when the server sends it); they join in another browser", async () => {
  const before = mail?.count() ?? 0;
  await navLink(page, "People").click();
  await page.getByRole("button", { name: "Invite people" }).click();
  const dialog = page.getByRole("dialog", { name: "Invite people" });
  await dialog.getByLabel("Email").fill(bob.email);
  await dialog.getByLabel("Role").selectOption("admin");
  await dialog.getByRole("button", { name: "Create invitation" }).click();
  let path;
  if (mail) {
    await dialog.getByText(`We emailed ${bob.email} a link to join`).waitFor();
    expect((await dialog.getByTestId("invite-link").count()) === 0, "no link to hand over when mail is sent");
    const msg = await mail.waitFor(bob.email, /\/invite\/tfi_/, { since: before });
    path = mail.linkIn(msg, base, "/invite/");
  } else {
    path = new URL(await dialog.getByTestId("invite-link").inputValue()).pathname;
  }
  await axeCheck(page, "people: invitation sent");
  await dialog.getByRole("button", { name: "Done" }).click();
  state.ctx4 = await newContext({ viewport: { width: 1100, height: 800 } });
  state.page4 = await state.ctx4.newPage();
  state.page4.setDefaultTimeout(10_000);
  watch(state.page4);
  const p4 = state.page4;
  await p4.goto(path);
  await p4.getByLabel("Your name").fill(bob.name);
  await p4.getByLabel("Choose a password").fill(bob.password);
  await p4.getByRole("button", { name: "Join workspace" }).click();
  await p4.getByRole("heading", { name: "Welcome, Bob" }).waitFor();
  await p4.getByTestId("mfa-banner").waitFor(); // an Admin, inside the default 7 days
  await navLink(p4, "Projects").click();
  await p4.getByRole("button", { name: "New project" }).waitFor();
});

await steps.step("grace period 0 in workspace settings: the Admin without 2FA is taken to enrolment (axe)", async () => {
  await navLink(page, "Workspace settings").click();
  const field = page.getByLabel("Days to set up two-factor authentication");
  expect((await field.inputValue()) === "7", "7 days by default");
  await field.fill("91");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Enter a whole number of days from 0 to 90.").waitFor();
  await field.fill("0");
  const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().endsWith("/api/v1/workspace"));
  await page.getByRole("button", { name: "Save settings" }).click();
  const res = await saved;
  expect(res.status() === 200 && JSON.parse(res.request().postData()).mfa_grace_days === 0, "mfa_grace_days 0 sent");
  await toastTitled(page, "Workspace settings saved").waitFor();
  // Bob's page still believes he has days left; his next request answers 403 mfa_enrolment_required.
  const p4 = state.page4;
  const refused = p4.waitForResponse((r) => r.status() === 403 && r.url().includes("/api/v1/"));
  await navLink(p4, "My tasks").click();
  const body = await (await refused).json();
  expect(body.code === "mfa_enrolment_required", `the server refused with ${body.code}`);
  await p4.waitForURL(/\/enrol-2fa\?next=%2Fmy-tasks/);
  await heading(p4, "Set up two-factor authentication").waitFor();
  await p4.getByText("requires Owners and Admins to use two-factor authentication").waitFor();
  await axeCheck(p4, "mandatory enrolment");
  await screenshot(p4, "enrol-required");
  // Nothing else is reachable meanwhile.
  await p4.goto("/projects");
  await p4.waitForURL(/\/enrol-2fa/);
  const { codes } = await enrol(p4, bob);
  expect(codes.length === 10, "Bob got recovery codes");
  await finishRecovery(p4);
  await p4.waitForURL(/\/projects$/);
  await p4.getByRole("button", { name: "New project" }).waitFor();
});

await steps.step("an Admin signs a member out everywhere from the people screen", async () => {
  await navLink(page, "People").click();
  const row = page.locator(`tr[data-member-email="${bob.email}"]`);
  await row.getByRole("button", { name: `Sign out everywhere: ${bob.name}` }).click();
  const dialog = page.getByRole("dialog", { name: `Sign ${bob.name} out everywhere?` });
  await axeCheck(page, "people: sign out everywhere");
  const del = page.waitForResponse((r) => r.request().method() === "DELETE" && r.url().endsWith("/sessions"));
  await dialog.getByRole("button", { name: "Sign out everywhere" }).click();
  expect((await del).status() === 204, "DELETE /members/{id}/sessions answered 204");
  await toastTitled(page, `${bob.name} was signed out everywhere`).waitFor();
  await state.page4.reload();
  await state.page4.waitForURL(/\/signin/);
  await state.ctx4.close();
});

await mailStep("forgot password: the mailed link sets a new one and ends every session (axe)", async () => {
  const c5 = await newContext();
  const p5 = await c5.newPage();
  p5.setDefaultTimeout(10_000);
  watch(p5);
  await p5.goto("/signin");
  await p5.getByLabel("Workspace").fill(owner.slug);
  await p5.getByLabel("Email", { exact: true }).fill(owner.email);
  await p5.getByRole("link", { name: "Forgot your password?" }).click();
  await heading(p5, "Reset your password").waitFor();
  expect((await p5.getByLabel("Email").inputValue()) === owner.email, "the email is carried over");
  await axeCheck(p5, "forgot password");
  const before = mail.count();
  await p5.getByRole("button", { name: "Email me a reset link" }).click();
  await heading(p5, "Check your email").waitFor();
  const msg = await mail.waitFor(owner.email, /\/reset-password\?token=/, { since: before });
  const path = mail.linkIn(msg, base, "/reset-password?token=");
  await p5.goto(path);
  await heading(p5, "Choose a new password").waitFor();
  await axeCheck(p5, "reset password");
  await screenshot(p5, "reset-password");
  owner.password = "a new horse battery";
  await p5.getByLabel("New password", { exact: true }).fill(owner.password);
  await p5.getByLabel("Repeat the new password").fill("something else entirely");
  await p5.getByRole("button", { name: "Set the new password" }).click();
  await p5.getByText("The two passwords differ.").waitFor();
  await p5.getByLabel("Repeat the new password").fill(owner.password);
  await p5.getByRole("button", { name: "Set the new password" }).click();
  await p5.waitForURL(/\/signin\?reset=1/);
  await p5.getByText("Your password was changed and every session was signed out").waitFor();
  // The first browser's session ended with the reset.
  await page.reload();
  await page.waitForURL(/\/signin/);
  await fillSignIn(page, owner);
  await secondStepWithCode(page, await state.auth.code());
  await page.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  // The link works once.
  await p5.goto(path);
  await p5.getByRole("button", { name: "Set the new password" }).waitFor();
  await p5.getByLabel("New password", { exact: true }).fill("yet another password");
  await p5.getByLabel("Repeat the new password").fill("yet another password");
  await p5.getByRole("button", { name: "Set the new password" }).click();
  await p5.getByText("This password reset link is not valid").waitFor();
  await c5.close();
});

await mailStep("magic link: the mailed link signs in (after the second factor), once (axe)", async () => {
  const c6 = await newContext();
  const p6 = await c6.newPage();
  p6.setDefaultTimeout(10_000);
  watch(p6);
  await p6.goto("/signin");
  await p6.getByRole("button", { name: "Email me a sign-in link" }).click();
  await heading(p6, "Sign in with an email link").waitFor();
  await p6.getByLabel("Workspace").fill(owner.slug);
  await p6.getByLabel("Email", { exact: true }).fill(owner.email);
  expect((await p6.getByLabel("Password", { exact: true }).count()) === 0, "no password field in link mode");
  await axeCheck(p6, "sign-in: email link");
  const before = mail.count();
  await p6.getByRole("button", { name: "Email me a link" }).click();
  await heading(p6, "Check your email").waitFor();
  const msg = await mail.waitFor(owner.email, /\/magic-link\?token=/, { since: before });
  const path = mail.linkIn(msg, base, "/magic-link?token=");
  await p6.goto(path);
  await heading(p6, "Sign in with an email link").waitFor();
  await axeCheck(p6, "magic link");
  await screenshot(p6, "magic-link");
  await p6.getByRole("button", { name: "Sign in", exact: true }).click();
  // The second factor here is a recovery code (the app's codes are spent one 30-second step at a time).
  await heading(p6, "Two-step verification").waitFor();
  await p6.getByRole("button", { name: "Use a recovery code" }).click();
  await p6.getByLabel("Recovery code").fill(state.codes[2]);
  await p6.getByRole("button", { name: "Verify" }).click();
  await p6.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  const sessions = await apiCall(c6, base, "GET", "/me/sessions");
  expect(sessions.json.items.some((s) => s.current && /^magic_link\+(recovery_code|totp)$/.test(s.method)), `the session says how it began: ${JSON.stringify(sessions.json.items.map((s) => s.method))}`);
  await p6.goto(path);
  await p6.getByRole("button", { name: "Sign in", exact: true }).click();
  await p6.getByText("This sign-in link is not valid").waitFor();
  await c6.close();
});

await steps.step("a 429 answer shows a toast with the wait", async () => {
  let hits = 0;
  const projectsList = (u) => u.pathname === "/api/v1/projects";
  await page.route(projectsList, (route) => {
    hits++;
    return route.fulfill({
      status: 429,
      headers: { "Content-Type": "application/problem+json", "Retry-After": "42" },
      body: JSON.stringify({ status: 429, code: "rate_limited", title: "Too Many Requests", detail: "more than 20000 requests in 1h0m0s; retry in 42 s" }),
    });
  });
  await page.goto("/projects");
  await toastTitled(page, "Too many requests").waitFor();
  await page.locator(".toast-description", { hasText: "Please wait 42 seconds and try again." }).waitFor();
  await page.getByText("more than 20000 requests").waitFor(); // the screen's own error state
  expect(hits >= 1, "the request was refused");
  await page.unroute(projectsList);
  expect((await toastTitled(page, "Too many requests").count()) === 1, "one toast per wait");
});

await steps.step("turning 2FA off asks for the password and a code; with a 0-day grace the Owner goes to enrolment", async () => {
  await openSecurity(page, owner.name);
  await page.getByRole("button", { name: "Turn off two-factor authentication" }).click();
  const dialog = page.getByRole("dialog", { name: "Turn off two-factor authentication?" });
  await dialog.getByText("Owners and Admins must use two-factor authentication").waitFor();
  await axeCheck(page, "profile: turn off 2FA");
  await dialog.getByLabel("Your password").fill(owner.password);
  await dialog.getByLabel("Code from your authenticator app").fill(state.auth.reused());
  await dialog.getByRole("button", { name: "Turn off" }).click();
  await dialog.getByText("That code does not match.").waitFor();
  await dialog.getByLabel("Code from your authenticator app").fill(await state.auth.code());
  await dialog.getByRole("button", { name: "Turn off" }).click();
  await toastTitled(page, "Two-factor authentication is off").waitFor();
  // The workspace gives 0 days: the Owner now reaches nothing but enrolment.
  await page.waitForURL(/\/enrol-2fa/);
  await heading(page, "Set up two-factor authentication").waitFor();
  const r = await apiCall(ctx, base, "GET", "/projects");
  expect(r.status === 403 && r.json.code === "mfa_enrolment_required", `the API agrees: ${r.status} ${r.json?.code}`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await heading(page, "Sign in").waitFor();
});

await steps.step("at a phone's width enrolment, the security section and the audit log fit (axe)", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await fillSignIn(page, owner);
  await page.waitForURL(/\/enrol-2fa/); // no second factor now, and past the deadline
  await page.getByLabel("Your password").fill(owner.password);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("img", { name: /QR code/ }).waitFor();
  let o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(o <= 0, `enrolment: no page-wide horizontal scroll (overflow ${o}px)`);
  await axeCheck(page, "mandatory enrolment (phone)");
  const secret = (await page.getByTestId("totp-secret").textContent()).replace(/\s+/g, "");
  state.auth = new Authenticator(secret);
  await page.getByLabel("Enter the 6-digit code the app shows").fill(await state.auth.code());
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  await page.getByTestId("recovery-codes").waitFor();
  await finishRecovery(page);
  await page.waitForURL((u) => !u.pathname.startsWith("/enrol-2fa"));
  for (const [path, ready, name] of [
    ["/profile#security", () => page.getByRole("table", { name: "Your sessions" }).waitFor(), "profile: security (phone)"],
    ["/audit", () => page.getByRole("table", { name: "Audit log" }).waitFor(), "audit log (phone)"],
  ]) {
    await page.goto(path);
    await ready();
    o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(o <= 0, `${name}: no page-wide horizontal scroll (overflow ${o}px)`);
    await axeCheck(page, name);
  }
  await screenshot(page, "security-phone");
  await page.setViewportSize(viewport);
});

await steps.step("no uncaught errors in the pages", async () => {
  expect(pageErrors.length === 0, `page errors: ${pageErrors.join(" | ")}`);
});

await browser.close();
await srv.stop();
await mail?.stop();

const s = steps.summary();
const allViolations = axeLog.flatMap((l) => l.violations.map((v) => `${l.screen}: [${v.impact}] ${v.id}`));
console.log(`\naxe-core: ${axeLog.length} screens checked; serious/critical: 0 where passed; other findings: ${allViolations.length ? "\n  " + [...new Set(allViolations)].join("\n  ") : "none"}`);
if (skipped.length) console.log(`skipped without mail (${skipped.length}): ${skipped.join("; ")}`);
if (mail) console.log(`mail: ${mail.messages.length} messages delivered over SMTP (${[...new Set(mail.messages.map((m) => m.subject.replace(/ for .*| to .*| in .*/, "")))].join("; ")})`);
console.log(`security e2e took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${s.passed} passed, ${s.failed} failed${s.skipped + skipped.length ? `, ${s.skipped + skipped.length} skipped` : ""}`);
process.exit(s.failed || s.skipped ? 1 : 0);
