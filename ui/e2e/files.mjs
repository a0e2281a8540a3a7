// Attachments, recorded messages and the security settings against a real
// `teamflow serve --mode cloud` and headless Chromium with a fake camera and
// microphone (lib.mjs FAKE_MEDIA_ARGS). The workspace (moved to Enterprise by
// the operator), its project and task and the teammate are made through the
// API; everything checked is checked in the browser:
// upload by the picker and by drag-and-drop (image thumbnail), download,
// cancel, quota and too-large refusals, a recorded voice and video message
// played back, delete; new recovery codes; resend an invitation; reset a
// member's 2FA; the IP allowlist (loopback) and CORS origins; the audit log
// filtered, verified and exported (and the export refused). axe-core checks
// each new screen state (serious/critical fail the run).
//
//   TEAMFLOW_BIN=/abs/path/bin/teamflow node e2e/files.mjs   (npm run e2e runs it)

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { apiCall, axeCheck, axeLog, expect, launchBrowser, screenshot, startServer, Steps } from "./lib.mjs";
import { Authenticator } from "./totp.mjs";

const t0 = Date.now();
const srv = await startServer();
const base = srv.url;
const browser = await launchBrowser({ media: true });
const steps = new Steps();
const viewport = { width: 1280, height: 800 };
const opts = { baseURL: base, viewport, locale: "en-GB", timezoneId: "Europe/Berlin", reducedMotion: "reduce" };
const ctx = await browser.newContext({ ...opts, acceptDownloads: true, permissions: ["microphone", "camera"] });
const page = await ctx.newPage();
page.setDefaultTimeout(10_000);
const pageErrors = [];
const watch = (p) => p.on("pageerror", (e) => pageErrors.push(e.message));
watch(page);
const ada = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery", slug: "acmefiles" };
const bob = { name: "Bob Teammate", email: "bob@example.com", password: "another good secret" };
const state = {};

steps.onFail = async (name) => {
  const file = `/tmp/teamflow-e2e-files-failure-${name.replace(/\W+/g, "-")}.png`;
  await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  console.log(`      screenshot of the failure: ${file}; current URL ${page.url()}`);
};

const A = (method, path, body, headers) => apiCall(ctx, base, method, path, body, headers);
const toastTitled = (p, text) => p.locator(".toast-title", { hasText: text });
const item = (p, name) => p.locator(`li.attachment[data-attachment-name="${name}"]`);
const isUpload = (r) => r.request().method() === "POST" && /\/api\/v1\/tasks\/[^/]+\/attachments$/.test(new URL(r.url()).pathname);
const uploadRoute = (u) => /\/api\/v1\/tasks\/[^/]+\/attachments$/.test(u.pathname);

/** A small RGB PNG (a gradient), encoded here: chunks with their CRC-32. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([(x * 255) / width, (y * 255) / height, 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}

console.log(`teamflow at ${base} (fake camera and microphone)`);

await steps.step("set up: a workspace on Enterprise, a project with a task, a pending invitation (API)", async () => {
  let r = await A("POST", "/signup", { workspace_name: "Acme Files", workspace_slug: ada.slug, name: ada.name, email: ada.email, password: ada.password, session_cookie: true });
  expect(r.status === 201, `signup: ${r.status} ${JSON.stringify(r.json)}`);
  state.ada = r.json.owner.id;
  const op = readFileSync(join(srv.data, "operator.token"), "utf8").trim();
  const set = await fetch(`${base}/api/v1/platform/workspaces/${ada.slug}/plan`, { method: "PUT", headers: { Authorization: `Bearer ${op}`, "Content-Type": "application/json" }, body: JSON.stringify({ plan: "enterprise" }) });
  expect(set.status === 200, `the operator moved the workspace to Enterprise: ${set.status}`);
  r = await A("POST", "/projects", { name: "Launch", key: "FIL" });
  expect(r.status === 201, `project: ${r.status}`);
  state.project = r.json.id;
  r = await A("POST", `/projects/${state.project}/tasks`, { title: "Collect the assets" });
  expect(r.status === 201, `task: ${r.status}`);
  state.task = r.json.id;
  r = await A("POST", "/invitations", { email: bob.email, role: "member" });
  expect(r.status === 201 && r.json.token, `invite: ${r.status}`);
  state.firstInviteToken = r.json.token;
});

await steps.step("task detail: the empty attachments section (axe)", async () => {
  await page.goto("/tasks/FIL-1");
  await page.getByRole("heading", { name: "Attachments" }).waitFor();
  await page.getByText("No attachments yet").waitFor();
  await page.getByRole("button", { name: "Choose files…" }).waitFor();
  await axeCheck(page, "task: attachments (empty)");
});

await steps.step("upload a file with the picker: listed with size, type and uploader, and downloadable", async () => {
  const text = "Asset list\n- logo\n- hero image\n";
  const uploaded = page.waitForResponse(isUpload);
  const chooser = page.waitForEvent("filechooser");
  await page.getByRole("button", { name: "Choose files…" }).click();
  await (await chooser).setFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from(text) });
  const res = await uploaded;
  expect(res.status() === 201, `the upload answered ${res.status()}`);
  expect(/multipart\/form-data/.test(res.request().headers()["content-type"] ?? ""), "sent as multipart/form-data");
  const li = item(page, "notes.txt");
  await li.waitFor();
  const meta = await li.textContent();
  expect(meta.includes("31 B") && meta.includes("Text") && meta.includes(ada.name), `the row shows size, type and uploader: ${meta}`);
  const download = page.waitForEvent("download");
  await li.getByRole("link", { name: "Download notes.txt" }).click();
  const d = await download;
  expect(d.suggestedFilename() === "notes.txt", `downloaded as ${d.suggestedFilename()}`);
  expect(readFileSync(await d.path(), "utf8") === text, "the download is the uploaded content");
});

await steps.step("drop an image on the section: uploaded, with a thumbnail", async () => {
  const b64 = png(64, 48).toString("base64");
  const uploaded = page.waitForResponse(isUpload);
  await page.evaluate((data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "pixel-art.png", { type: "image/png" }));
    const target = document.querySelector('[data-testid="attachments"]');
    for (const type of ["dragenter", "dragover", "drop"]) target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, b64);
  expect((await uploaded).status() === 201, "the dropped file was uploaded");
  const img = item(page, "pixel-art.png").locator("img.attachment-thumb");
  await img.waitFor();
  await page.waitForFunction(() => document.querySelector('li[data-attachment-name="pixel-art.png"] img.attachment-thumb')?.naturalWidth > 0);
  expect((await item(page, "pixel-art.png").textContent()).includes("PNG image"), "named a PNG image");
});

await steps.step("an upload in progress shows its progress and can be cancelled", async () => {
  let held = null;
  await page.route(uploadRoute, (route) => {
    if (route.request().method() !== "POST") return route.continue();
    held = route; // never answered: the upload stays in flight
  });
  const chooser = page.waitForEvent("filechooser");
  await page.getByRole("button", { name: "Choose files…" }).click();
  await (await chooser).setFiles({ name: "slow.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(200_000, 7) });
  const bar = page.getByRole("progressbar", { name: "Uploading slow.bin" });
  await bar.waitFor();
  await axeCheck(page, "task: upload in progress");
  await page.getByRole("button", { name: "Cancel uploading slow.bin" }).click();
  await bar.waitFor({ state: "detached" });
  expect((await item(page, "slow.bin").count()) === 0, "a cancelled upload is not listed");
  await page.unroute(uploadRoute);
  await held?.abort().catch(() => {});
});

await steps.step("quota and too-large refusals (problem+json) are explained", async () => {
  const refusals = [
    { code: "file_too_large", details: { max_bytes: 268435456 }, want: "“huge.iso” is too large: files may be at most 268 MB." },
    { code: "storage_quota_exceeded", details: { limit: "storage", plan: "Free", max: 1000000000, used: 999999000 }, want: "does not fit in the Free plan's storage" },
  ];
  for (const r of refusals) {
    await page.route(uploadRoute, (route) =>
      route.request().method() === "POST"
        ? route.fulfill({ status: 413, headers: { "Content-Type": "application/problem+json" }, body: JSON.stringify({ status: 413, title: "Request Entity Too Large", code: r.code, detail: "refused", details: r.details }) })
        : route.continue(),
    );
    const chooser = page.waitForEvent("filechooser");
    await page.getByRole("button", { name: "Choose files…" }).click();
    await (await chooser).setFiles({ name: "huge.iso", mimeType: "application/octet-stream", buffer: Buffer.alloc(1000, 1) });
    const alert = page.locator('li[data-upload-name="huge.iso"] [role="alert"]');
    await alert.waitFor();
    expect((await alert.textContent()).includes(r.want), `the ${r.code} message: ${await alert.textContent()}`);
    if (r.code === "storage_quota_exceeded") await axeCheck(page, "task: upload refused");
    await page.getByRole("button", { name: "Dismiss the error about huge.iso" }).click();
    await alert.waitFor({ state: "detached" });
    await page.unroute(uploadRoute);
  }
});

await steps.step("record a voice message: elapsed time, listen back, send; it plays back in the list (axe)", async () => {
  await page.getByRole("button", { name: "Record voice message" }).click();
  const recorder = page.getByRole("group", { name: "Record a voice message" });
  await recorder.getByRole("button", { name: "Stop recording" }).waitFor();
  // Wait (bounded) until at least a second has been recorded.
  await page.waitForFunction(() => /^0:0[1-9]$/.test(document.querySelector('[data-testid="elapsed"]')?.textContent ?? ""), null, { timeout: 10_000 });
  await axeCheck(page, "task: recording");
  await recorder.getByRole("button", { name: "Stop recording" }).click();
  await page.getByTestId("recording-preview").waitFor();
  expect((await page.getByTestId("recording-preview").evaluate((e) => e.tagName)) === "AUDIO", "a voice message previews in an audio element");
  await axeCheck(page, "task: recorded message");
  const uploaded = page.waitForResponse(isUpload);
  await recorder.getByRole("button", { name: "Send voice message" }).click();
  const res = await uploaded;
  expect(res.status() === 201, `sent: ${res.status()} ${await res.text()}`);
  const a = await res.json();
  expect(a.kind === "audio_message" && a.content_type.startsWith("audio/") && a.duration_ms >= 1000, `an audio message with its duration: ${JSON.stringify(a)}`);
  const player = page.locator('li.attachment[data-kind="audio_message"] audio[controls]');
  await player.waitFor();
  expect((await player.getAttribute("aria-label")).startsWith(`Voice message from ${ada.name}`), "the player is named");
  // The browser reads the recording back from the server.
  await page.waitForFunction(() => document.querySelector('li.attachment[data-kind="audio_message"] audio')?.readyState >= 1, null, { timeout: 10_000 });
});

await steps.step("record a video message, discard one, send another; it plays back as video", async () => {
  await page.getByRole("button", { name: "Record video message" }).click();
  let recorder = page.getByRole("group", { name: "Record a video message" });
  await recorder.getByRole("button", { name: "Stop recording" }).waitFor();
  await page.waitForFunction(() => /^0:0[1-9]$/.test(document.querySelector('[data-testid="elapsed"]')?.textContent ?? ""), null, { timeout: 10_000 });
  await recorder.getByRole("button", { name: "Stop recording" }).click();
  await recorder.getByRole("button", { name: "Discard" }).click();
  await page.getByRole("button", { name: "Record video message" }).click();
  recorder = page.getByRole("group", { name: "Record a video message" });
  await recorder.getByRole("button", { name: "Stop recording" }).waitFor();
  await page.waitForFunction(() => /^0:0[1-9]$/.test(document.querySelector('[data-testid="elapsed"]')?.textContent ?? ""), null, { timeout: 10_000 });
  await recorder.getByRole("button", { name: "Stop recording" }).click();
  const uploaded = page.waitForResponse(isUpload);
  await recorder.getByRole("button", { name: "Send video message" }).click();
  const a = await (await uploaded).json();
  expect(a.kind === "video_message" && a.content_type.startsWith("video/"), `a video message: ${JSON.stringify(a)}`);
  const player = page.locator('li.attachment[data-kind="video_message"] video[controls]');
  await player.waitFor();
  await page.waitForFunction(() => document.querySelector('li.attachment[data-kind="video_message"] video')?.readyState >= 1, null, { timeout: 10_000 });
  const list = await A("GET", `/tasks/${state.task}/attachments`);
  expect(list.json.items.filter((x) => x.kind === "video_message").length === 1, "the discarded recording was never sent");
  await axeCheck(page, "task: attachments and messages");
  await screenshot(page, "task-attachments");
});

await steps.step("delete an attachment; reload and the rest is kept", async () => {
  await item(page, "notes.txt").getByRole("button", { name: "Delete notes.txt" }).click();
  const dialog = page.getByRole("dialog", { name: "Delete “notes.txt”?" });
  const del = page.waitForResponse((r) => r.request().method() === "DELETE" && r.url().includes("/api/v1/attachments/"));
  await dialog.getByRole("button", { name: "Delete", exact: true }).click();
  expect((await del).status() === 204, "deleted");
  await item(page, "notes.txt").waitFor({ state: "detached" });
  await page.reload();
  await item(page, "pixel-art.png").waitFor();
  await page.locator('li.attachment[data-kind="audio_message"]').waitFor();
  expect((await item(page, "notes.txt").count()) === 0, "gone after a reload");
});

await steps.step("make new recovery codes from the profile: shown once, the old ones stop working (axe)", async () => {
  let r = await A("POST", "/me/mfa/totp", { password: ada.password });
  expect(r.status === 200 && r.json.secret, `TOTP enrolment begins: ${r.status}`);
  state.auth = new Authenticator(r.json.secret);
  r = await A("POST", "/me/mfa/totp/confirm", { code: await state.auth.code() });
  expect(r.status === 200 && r.json.recovery_codes?.length === 10, `enrolled: ${r.status}`);
  const old = r.json.recovery_codes;
  await page.goto("/profile#security");
  await page.getByRole("button", { name: "Make new recovery codes" }).click();
  const dialog = page.getByRole("dialog", { name: "Make new recovery codes" });
  await axeCheck(page, "profile: new recovery codes");
  await dialog.getByLabel("Your password").fill("not my password");
  await dialog.getByRole("button", { name: "Make new codes" }).click();
  await dialog.getByText(/not correct/).waitFor();
  await dialog.getByLabel("Your password").fill(ada.password);
  await dialog.getByRole("button", { name: "Make new codes" }).click();
  const list = dialog.getByTestId("recovery-codes");
  await list.waitFor();
  const codes = (await list.locator("li").allTextContents()).map((s) => s.trim());
  expect(codes.length === 10 && codes.every((c) => !old.includes(c)), `ten new codes: ${codes}`);
  await dialog.getByText("The old ones no longer work").waitFor();
  await axeCheck(page, "profile: new recovery codes shown");
  await dialog.getByLabel("I have saved my recovery codes").check();
  await dialog.getByRole("button", { name: "Done", exact: true }).click();
  await page.getByTestId("recovery-remaining").getByText("10 unused recovery codes left").waitFor();
  // An old code no longer completes a sign-in; a new one does.
  const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ workspace: ada.slug, email: ada.email, password: ada.password }) }).then((x) => x.json());
  const tryCode = (code) => fetch(`${base}/api/v1/auth/mfa`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ mfa_token: login.mfa_token, recovery_code: code }) }).then((x) => x.status);
  expect((await tryCode(old[0])) !== 200, "an old code is refused");
  expect((await tryCode(codes[0])) === 200, "a new code works");
});

await steps.step("people: resend a pending invitation shows a new link; the old one stops working (axe)", async () => {
  await page.goto("/people");
  await page.getByRole("table", { name: "Pending invitations" }).getByText(bob.email).waitFor();
  await page.getByRole("button", { name: `Resend the invitation of ${bob.email}` }).click();
  const dialog = page.getByRole("dialog", { name: "A new invitation link" });
  const link = await dialog.getByTestId("resent-link").inputValue();
  expect(/\/invite\/tfi_/.test(link) && !link.includes(state.firstInviteToken), `a new link: ${link}`);
  await axeCheck(page, "people: invitation resent");
  await dialog.getByRole("button", { name: "Done" }).click();
  const oldPreview = await fetch(`${base}/api/v1/invitations/${encodeURIComponent(state.firstInviteToken)}/preview`);
  expect(oldPreview.status >= 400, `the earlier link no longer works: ${oldPreview.status}`);
  state.invitePath = new URL(link).pathname;
});

await steps.step("people: an Admin resets a member's 2FA; the member is signed out", async () => {
  const c2 = await browser.newContext(opts);
  const p2 = await c2.newPage();
  p2.setDefaultTimeout(10_000);
  watch(p2);
  await p2.goto(state.invitePath);
  await p2.getByLabel("Your name").fill(bob.name);
  await p2.getByLabel("Choose a password").fill(bob.password);
  await p2.getByRole("button", { name: "Join workspace" }).click();
  await p2.getByRole("heading", { name: "Welcome, Bob" }).waitFor();
  let r = await apiCall(c2, base, "POST", "/me/mfa/totp", { password: bob.password });
  r = await apiCall(c2, base, "POST", "/me/mfa/totp/confirm", { code: await new Authenticator(r.json.secret).code() });
  expect(r.status === 200, `Bob enrolled 2FA: ${r.status}`);
  await page.goto("/people");
  const row = page.locator(`tr[data-member-email="${bob.email}"]`);
  await row.getByRole("button", { name: `Reset 2FA: ${bob.name}` }).waitFor();
  await axeCheck(page, "people: admin actions");
  await row.getByRole("button", { name: `Reset 2FA: ${bob.name}` }).click();
  const dialog = page.getByRole("dialog", { name: `Reset ${bob.name}'s two-factor authentication?` });
  await axeCheck(page, "people: reset 2FA");
  const del = page.waitForResponse((x) => x.request().method() === "DELETE" && x.url().endsWith("/mfa"));
  await dialog.getByRole("button", { name: "Reset two-factor authentication" }).click();
  expect((await del).status() === 204, "DELETE /members/{id}/mfa answered 204");
  await toastTitled(page, `${bob.name}'s two-factor authentication was reset`).waitFor();
  await p2.reload();
  await p2.waitForURL(/\/signin/);
  await c2.close();
});

await steps.step("workspace settings: a bad network is refused; an allowlist with the loopback and a CORS origin are saved (axe)", async () => {
  await page.goto("/settings");
  const allow = page.getByLabel("Allowed networks (IP allowlist)");
  await allow.waitFor();
  await axeCheck(page, "settings: network access");
  await allow.fill("127.0.0.0/8\n10.0.0.0/40");
  await page.getByRole("button", { name: "Save network settings" }).click();
  await page.getByText("10.0.0.0/40 has a prefix length over 32").waitFor();
  // A list without the caller's own address is refused by the server.
  await allow.fill("192.0.2.0/24");
  await page.getByRole("button", { name: "Save network settings" }).click();
  await page.locator("#ws-allowlist-error", { hasText: /must include the address you are connecting from/ }).waitFor();
  await axeCheck(page, "settings: network refused");
  await allow.fill("127.0.0.0/8\n::1");
  await page.getByLabel("Allowed web origins (CORS)").fill("https://App.Example.com/");
  const saved = page.waitForResponse((x) => x.request().method() === "PATCH" && x.url().endsWith("/api/v1/workspace"));
  await page.getByRole("button", { name: "Save network settings" }).click();
  const res = await saved;
  const sent = JSON.parse(res.request().postData());
  expect(res.status() === 200 && sent.ip_allowlist.join() === "127.0.0.0/8,::1" && sent.cors_origins.join() === "https://app.example.com", `sent ${res.request().postData()} → ${res.status()}`);
  await toastTitled(page, "Network settings saved").waitFor();
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#ws-allowlist")?.value.includes("127.0.0.0/8"));
  expect((await page.getByLabel("Allowed web origins (CORS)").inputValue()) === "https://app.example.com", "the origin is kept");
  const ws = await A("GET", "/workspace");
  expect(ws.json.ip_allowlist.includes("127.0.0.0/8"), `the server keeps it: ${JSON.stringify(ws.json.ip_allowlist)}`);
  await screenshot(page, "settings-network");
});

await steps.step("audit log: filter by action, verify the chain, export CSV; a refused export shows the problem (axe)", async () => {
  await page.goto("/audit");
  const table = page.getByRole("table", { name: "Audit log" });
  await table.locator('tr[data-action="auth.login"]').first().waitFor();
  await page.getByLabel("Action").fill("member.");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForURL(/action=member\./);
  await table.locator('tr[data-action="member.mfa_reset"]').first().waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll("table.audit-table tbody tr[data-action]")].every((tr) => tr.getAttribute("data-action").startsWith("member.")));
  await page.getByLabel("Who").selectOption({ label: ada.name });
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForURL(/actor=/);
  await table.locator('tr[data-action="member.mfa_reset"]').first().waitFor();
  await axeCheck(page, "audit log: filtered");
  await page.getByRole("button", { name: "Verify the chain" }).click();
  const result = page.getByTestId("verify-result");
  await result.waitFor();
  expect((await result.textContent()).includes("The chain is intact"), `verified: ${await result.textContent()}`);
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const d = await download;
  const csv = readFileSync(await d.path(), "utf8");
  expect(d.suggestedFilename().endsWith(".csv") && csv.startsWith("seq,at,action") && csv.includes("member.mfa_reset") && !csv.includes("auth.login,"), `a filtered CSV export (${d.suggestedFilename()}): ${csv.slice(0, 200)}`);
  await axeCheck(page, "audit log: verified");
  await screenshot(page, "audit-filtered");
  const exportRoute = (u) => u.pathname === "/api/v1/audit/export";
  await page.route(exportRoute, (route) =>
    route.fulfill({
      status: 403,
      headers: { "Content-Type": "application/problem+json" },
      body: JSON.stringify({ status: 403, title: "Forbidden", code: "plan_feature_unavailable", detail: "audit export is not part of the Starter plan", details: { feature: "audit export", plan: "Starter" } }),
    }),
  );
  await page.getByRole("button", { name: "Export JSON" }).click();
  const err = page.getByTestId("export-error");
  await err.waitFor();
  expect((await err.textContent()).includes("Exporting the audit log is not part of the Starter plan"), `the refusal: ${await err.textContent()}`);
  await page.unroute(exportRoute);
  await page.getByRole("button", { name: "Clear", exact: true }).click();
  await page.waitForURL((u) => !u.search.includes("action="));
  await table.locator('tr[data-action="auth.login"]').first().waitFor();
});

await steps.step("at a phone's width the task's attachments and the audit filters fit (axe)", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [path, ready, name] of [
    ["/tasks/FIL-1", () => page.locator('li.attachment[data-kind="audio_message"]').waitFor(), "task attachments (phone)"],
    ["/audit", () => page.getByRole("table", { name: "Audit log" }).waitFor(), "audit filters (phone)"],
  ]) {
    await page.goto(path);
    await ready();
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(o <= 0, `${name}: no page-wide horizontal scroll (overflow ${o}px)`);
    await axeCheck(page, name);
  }
  await page.setViewportSize(viewport);
});

await steps.step("no uncaught errors in the pages", async () => {
  expect(pageErrors.length === 0, `page errors: ${pageErrors.join(" | ")}`);
});

await browser.close();
await srv.stop();

const s = steps.summary();
const allViolations = axeLog.flatMap((l) => l.violations.map((v) => `${l.screen}: [${v.impact}] ${v.id}`));
console.log(`\naxe-core: ${axeLog.length} screens checked; serious/critical: 0 where passed; other findings: ${allViolations.length ? "\n  " + [...new Set(allViolations)].join("\n  ") : "none"}`);
console.log(`files e2e took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
process.exit(s.failed || s.skipped ? 1 : 0);
