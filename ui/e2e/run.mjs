// The UI's end-to-end test: a real `teamflow serve --mode cloud` (no mail) and
// headless Chromium. Account security (2FA, sessions, API keys, mail flows,
// audit log) is in security.mjs; `npm run e2e` runs both (all.mjs).
// One story, step by step: sign up → sign out and in → create a
// project → add tasks → drag a card by pointer and by keyboard → invite a
// teammate who accepts in a second browser → open a task, edit it, comment
// with an @mention → reload and find everything kept → conflicts, plan
// limits, trash, settings (brand colour applied), profile, people, phone
// width. axe-core checks every main screen (serious/critical fail the run).
//
//   TEAMFLOW_BIN=/abs/path/bin/teamflow npm run e2e
//   UPDATE_SCREENSHOTS=1 … refreshes docs/screenshots/*.png

import { BUDGET_BYTES, firstScreenSize, report } from "./size.mjs";
import { apiCall, axeCheck, axeLog, expect, launchBrowser, screenshot, startServer, Steps } from "./lib.mjs";

const t0 = Date.now();
const srv = await startServer();
const base = srv.url;
const browser = await launchBrowser();
const steps = new Steps();
const viewport = { width: 1280, height: 800 };
const ctx = await browser.newContext({ baseURL: base, viewport, locale: "en-GB", timezoneId: "Europe/Berlin", reducedMotion: "reduce" });
const page = await ctx.newPage();
page.setDefaultTimeout(10_000);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
let ctx2;
let page2;

const owner = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery", workspace: "Acme Corp", slug: "acme" };
const mate = { name: "Bob Teammate", email: "bob@example.com", password: "another good secret" };
const state = {};

steps.onFail = async (name) => {
  const file = `/tmp/teamflow-e2e-failure-${name.replace(/\W+/g, "-")}.png`;
  await page.screenshot({ path: file, fullPage: true });
  console.log(`      screenshot of the failure: ${file}; current URL ${page.url()}`);
};

const column = (p, status) => p.locator(`section.column[data-status="${status}"]`);
const card = (p, key) => p.locator(`li.task-card[data-key="${key}"]`);
const isPatch = (r) => r.request().method() === "PATCH" && /\/api\/v1\/tasks\/[^/]+$/.test(new URL(r.url()).pathname);
const toastTitled = (p, text) => p.locator(".toast-title", { hasText: text });
const navLink = (p, name) => p.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
// dnd-kit announces every step of a drag in a visually hidden live region.
const announced = (p, text) => p.waitForFunction((t) => [...document.querySelectorAll('[id^="DndLiveRegion"]')].some((e) => e.textContent.includes(t)), text);
// dnd-kit's keyboard sensor starts listening for arrows in a setTimeout(0) after the lift:
// a timer queued now in the page runs after it, so the next key press is never lost.
const settled = (p) => p.evaluate(() => new Promise((r) => setTimeout(r, 0)));

async function keysInColumn(p, status) {
  return column(p, status).locator("li.task-card").evaluateAll((els) => els.map((e) => e.getAttribute("data-key")));
}

console.log(`teamflow at ${base}`);

await steps.step("the first screen's JavaScript is at most 300 kB gzipped", async () => {
  const s = await firstScreenSize(async (p) => {
    const r = await fetch(base + p);
    expect(r.ok, `${p} answered ${r.status}`);
    return Buffer.from(await r.arrayBuffer());
  });
  console.log(`      ${report(s)}`);
  expect(s.gzip <= BUDGET_BYTES, "over the first-screen budget");
  const r = await fetch(base + "/projects/some/board");
  expect(r.ok && (r.headers.get("content-security-policy") ?? "").includes("script-src 'self'"), "client routes serve index.html under the CSP");
});

await steps.step("signup screen creates a workspace and signs in", async () => {
  await page.goto("/signup");
  await page.getByRole("heading", { name: "Create your workspace" }).waitFor();
  await axeCheck(page, "signup");
  await screenshot(page, "signup");
  await page.getByLabel("Workspace name").fill(owner.workspace);
  await page.getByLabel("Workspace address").fill(owner.slug);
  await page.getByLabel("Your name").fill(owner.name);
  await page.getByLabel("Email").fill(owner.email);
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create workspace" }).click();
  // The API's validation problem is shown next to the field.
  await page.getByText("expected length >= 8").waitFor();
  await page.getByLabel("Password").fill(owner.password);
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.getByRole("heading", { name: "Welcome, Ada" }).waitFor();
  const cookies = await ctx.cookies();
  const access = cookies.find((c) => c.name === "tf_access");
  expect(access?.httpOnly, "the access cookie is httpOnly");
  expect(!(await page.evaluate(() => document.cookie)).includes("tf_access"), "the page cannot read the access token");
  expect(await page.locator(".checklist li[data-done=true]").count() === 0, "fresh checklist has nothing done");
});

await steps.step("sign out, then sign in with workspace, email and password", async () => {
  await page.getByRole("button", { name: /Ada Owner.*account menu/ }).click();
  await page.getByRole("menuitem", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  expect(!(await ctx.cookies()).some((c) => c.name === "tf_access"), "sign-out cleared the session cookie");
  await page.goto("/my-tasks");
  await page.waitForURL(/\/signin\?next=%2Fmy-tasks/);
  await axeCheck(page, "sign-in");
  await page.getByLabel("Workspace").fill(owner.slug);
  await page.getByLabel("Email").fill(owner.email);
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "not correct" }).waitFor();
  await screenshot(page, "sign-in");
  await page.getByLabel("Password").fill(owner.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My tasks" }).waitFor();
  await page.getByText("Nothing is assigned to you").waitFor();
});

await steps.step("without mail on the server (GET /setup says mail: false), sign-in offers no mail options; the reset screen opened directly explains (axe)", async () => {
  const c = await browser.newContext({ baseURL: base, viewport });
  const p = await c.newPage();
  p.setDefaultTimeout(10_000);
  p.on("pageerror", (e) => pageErrors.push(e.message));
  const setup = p.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/setup" && r.request().method() === "GET");
  await p.goto(`/signin?workspace=${owner.slug}`);
  const answer = await (await setup).json();
  expect(answer.mail === false, `GET /setup says the server sends no mail: ${JSON.stringify(answer)}`);
  await p.getByLabel("Password").waitFor();
  await p.getByRole("link", { name: "Create a workspace" }).waitFor();
  expect((await p.getByRole("button", { name: "Email me a sign-in link" }).count()) === 0, "no sign-in link option without mail");
  expect((await p.getByRole("link", { name: "Forgot your password?" }).count()) === 0, "no reset option without mail");
  // An old bookmark of the reset screen still gets the 409 explained.
  await p.goto(`/forgot-password?${new URLSearchParams({ workspace: owner.slug, email: owner.email })}`);
  await p.getByRole("heading", { name: "Reset your password" }).waitFor();
  await axeCheck(p, "forgot password");
  await p.getByRole("button", { name: "Email me a reset link" }).click();
  await p.getByText("This installation sends no email, so a password cannot be reset by mail").waitFor();
  await p.getByRole("link", { name: "Back to sign-in" }).click();
  await p.getByRole("heading", { name: "Sign in" }).waitFor();
  expect((await p.getByRole("button", { name: "Email me a sign-in link" }).count()) === 0, "still no sign-in link option");
  await c.close();
});

await steps.step("home shows the onboarding checklist (axe)", async () => {
  await navLink(page, "Home").click();
  await page.getByRole("heading", { name: "Get started" }).waitFor();
  await page.getByText("0 of 4 done").waitFor();
  await axeCheck(page, "home");
});

await steps.step("create a project from the project list", async () => {
  await navLink(page, "Projects").click();
  await page.getByText("No projects yet").waitFor();
  await axeCheck(page, "projects (empty)");
  await page.getByRole("button", { name: "New project" }).click();
  const dialog = page.getByRole("dialog", { name: "New project" });
  await dialog.getByLabel("Name").fill("Website relaunch");
  await dialog.getByLabel("Key").fill("WEB");
  await axeCheck(page, "new project dialog");
  await dialog.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[^/]+\/board$/);
  state.projectId = page.url().split("/projects/")[1].split("/")[0];
  await column(page, "To do").waitFor();
  await page.getByText("No tasks").first().waitFor();
});

await steps.step("quick add puts tasks at the bottom of a column", async () => {
  for (const title of ["Design the homepage", "Write the copy", "Set up analytics", "Pick a font"]) {
    const created = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith(`/projects/${state.projectId}/tasks`));
    await page.getByLabel("Add a task to To do").fill(title);
    await page.getByLabel("Add a task to To do").press("Enter");
    expect((await created).status() === 201, `creating ${title} answered 201`);
  }
  await card(page, "WEB-4").waitFor();
  const keys = await keysInColumn(page, "To do");
  expect(JSON.stringify(keys) === JSON.stringify(["WEB-1", "WEB-2", "WEB-3", "WEB-4"]), `To do holds WEB-1..4 in order, got ${keys}`);
});

await steps.step("a real pointer drag moves a card to another column", async () => {
  const handle = card(page, "WEB-1").locator(".drag-handle");
  const hb = await handle.boundingBox();
  const target = column(page, "In progress").locator(".column-body");
  const tb = await target.boundingBox();
  const x = hb.x + hb.width / 2;
  const y = hb.y + hb.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + 8, y + 8, { steps: 4 });
  await page.mouse.move(tb.x + tb.width / 2, tb.y + 20, { steps: 12 });
  await page.mouse.move(tb.x + tb.width / 2, tb.y + 24, { steps: 2 });
  const patched = page.waitForResponse(isPatch);
  await page.mouse.up();
  const res = await patched;
  expect(res.status() === 200, `the move answered ${res.status()}`);
  const body = JSON.parse(res.request().postData());
  expect(body.move && body.move.after_id === "" && body.status, `PATCH body is {status, move:{after_id:""}}: ${res.request().postData()}`);
  expect((await keysInColumn(page, "In progress")).join() === "WEB-1", "WEB-1 is in In progress");
});

await steps.step("the keyboard moves cards too (Space, arrows, Space)", async () => {
  // Between columns: WEB-2 from To do to In progress.
  const handle = card(page, "WEB-2").locator(".drag-handle");
  await handle.focus();
  await page.keyboard.press("Space");
  await announced(page, "Picked up WEB-2");
  await settled(page);
  await page.keyboard.press("ArrowRight");
  await announced(page, "is now in In progress");
  let patched = page.waitForResponse(isPatch);
  await page.keyboard.press("Space");
  expect((await patched).status() === 200, "keyboard move across columns saved");
  let inProgress = await keysInColumn(page, "In progress");
  expect(inProgress.includes("WEB-2") && inProgress.length === 2, `In progress holds WEB-1 and WEB-2: ${inProgress}`);
  // After a drop dnd-kit gives focus back to the card's handle; wait for that before moving on.
  await page.waitForFunction(() => document.activeElement?.getAttribute("aria-label")?.startsWith("Move WEB-2"));
  // Within a column: WEB-4 one place up, above WEB-3.
  await card(page, "WEB-4").locator(".drag-handle").focus();
  await page.keyboard.press("Space");
  await announced(page, "Picked up WEB-4");
  await settled(page);
  await page.keyboard.press("ArrowUp");
  await announced(page, "position 1 of 2");
  patched = page.waitForResponse(isPatch);
  await page.keyboard.press("Space");
  const res = await patched;
  expect(res.status() === 200, "keyboard reorder saved");
  expect(JSON.parse(res.request().postData()).move.after_id === "", "WEB-4 went to the top of To do");
  expect((await keysInColumn(page, "To do")).join() === "WEB-4,WEB-3", `To do is WEB-4, WEB-3: ${await keysInColumn(page, "To do")}`);
  await page.waitForFunction(() => document.activeElement?.getAttribute("aria-label")?.startsWith("Move WEB-4"));
  // Escape cancels.
  await card(page, "WEB-3").locator(".drag-handle").focus();
  await page.keyboard.press("Space");
  await announced(page, "Picked up WEB-3");
  await settled(page);
  await page.keyboard.press("ArrowRight");
  await announced(page, "WEB-3 Set up analytics is now in In progress");
  await page.keyboard.press("Escape");
  await announced(page, "Cancelled");
  expect((await keysInColumn(page, "To do")).join() === "WEB-4,WEB-3", "Escape left the board as it was");
  inProgress = await keysInColumn(page, "In progress");
  state.inProgress = inProgress.join();
});

await steps.step("reloading the board keeps every move (axe)", async () => {
  await page.reload();
  await card(page, "WEB-1").waitFor();
  expect((await keysInColumn(page, "To do")).join() === "WEB-4,WEB-3", "To do kept its order");
  expect((await keysInColumn(page, "In progress")).join() === state.inProgress, "In progress kept its order");
  await axeCheck(page, "board");
  await screenshot(page, "board");
});

await steps.step("invite a teammate: the one-time link is shown (axe)", async () => {
  await navLink(page, "People").click();
  await page.getByRole("table", { name: "Members" }).waitFor();
  await page.getByRole("button", { name: "Invite people" }).click();
  const dialog = page.getByRole("dialog", { name: "Invite people" });
  await dialog.getByLabel("Email").fill("not-an-email");
  await dialog.getByRole("button", { name: "Create invitation" }).click();
  await dialog.getByText("is not an email address").waitFor();
  await dialog.getByLabel("Email").fill(mate.email);
  await dialog.getByRole("button", { name: "Create invitation" }).click();
  const link = await dialog.getByTestId("invite-link").inputValue();
  expect(/\/invite\/tfi_/.test(link), `an invitation link: ${link}`);
  state.invitePath = new URL(link).pathname;
  await axeCheck(page, "people: invitation link");
  await screenshot(page, "people-invite");
  await dialog.getByRole("button", { name: "Done" }).click();
  await page.getByRole("table", { name: "Pending invitations" }).getByText(mate.email).waitFor();
});

await steps.step("the teammate accepts in a second browser context", async () => {
  ctx2 = await browser.newContext({ baseURL: base, viewport: { width: 1100, height: 800 }, locale: "en-US", timezoneId: "America/New_York", reducedMotion: "reduce" });
  page2 = await ctx2.newPage();
  page2.setDefaultTimeout(10_000);
  await page2.goto("/invite/tfi_nonsense_token");
  await page2.getByText("no longer valid").waitFor();
  await page2.goto(state.invitePath);
  await page2.getByRole("heading", { name: `Join ${owner.workspace}` }).waitFor();
  await axeCheck(page2, "invitation accept");
  await screenshot(page2, "invite-accept");
  await page2.getByLabel("Your name").fill(mate.name);
  await page2.getByLabel("Choose a password").fill(mate.password);
  await page2.getByRole("button", { name: "Join workspace" }).click();
  await page2.getByRole("heading", { name: "Welcome, Bob" }).waitFor();
  const me = await apiCall(ctx2, base, "GET", "/me");
  expect(me.json.email === mate.email && me.json.role === "member" && me.json.timezone === "America/New_York", `Bob is a member in his timezone: ${JSON.stringify(me.json)}`);
  state.bobId = me.json.id;
  await page.reload();
  await page.locator(`tr[data-member-email="${mate.email}"]`).waitFor();
});

await steps.step("open a task: edit the description, properties and subtasks", async () => {
  await page.goto(`/projects/${state.projectId}/board`);
  await card(page, "WEB-1").getByRole("link").click();
  await page.waitForURL(/\/tasks\/WEB-1$/);
  await page.getByLabel("Title").waitFor();
  await page.getByRole("button", { name: "Edit description" }).click();
  const editor = page.getByRole("textbox", { name: "Description" });
  await editor.click();
  await page.keyboard.type("A fresh homepage for the relaunch. Owner: @Bob");
  await page.locator(".mention-menu [role=option]", { hasText: mate.name }).waitFor();
  await page.keyboard.press("Enter");
  const descRegion = page.getByRole("region", { name: "Description" });
  await descRegion.getByRole("button", { name: "Bold" }).click();
  await page.keyboard.type(" Deadline matters.");
  let patched = page.waitForResponse(isPatch);
  await descRegion.getByRole("button", { name: "Save", exact: true }).click();
  let res = await patched;
  const sent = JSON.parse(res.request().postData()).description;
  expect(sent.includes(`@[${mate.name}](user:${state.bobId})`) && sent.includes("**Deadline matters.**"), `description Markdown: ${sent}`);
  await page.getByTestId("description").locator(".mention").waitFor();
  for (const [label, value] of [["Priority", "high"], ["Status", "Done"]]) {
    patched = page.waitForResponse(isPatch);
    await page.getByLabel(label, { exact: true }).selectOption({ label: value });
    expect((await patched).status() === 200, `${label} saved`);
  }
  patched = page.waitForResponse(isPatch);
  await page.getByLabel("Due date", { exact: true }).fill("2031-03-15");
  expect((await patched).status() === 200, "due date saved");
  patched = page.waitForResponse(isPatch);
  await page.getByLabel("New tag").fill("Marketing");
  await page.getByLabel("New tag").press("Enter");
  expect((await patched).status() === 200, "tag saved");
  await page.getByRole("button", { name: "Change assignees" }).click();
  patched = page.waitForResponse(isPatch);
  await page.getByRole("checkbox", { name: new RegExp(mate.name) }).click();
  expect((await patched).status() === 200, "assignee saved");
  await page.keyboard.press("Escape");
  await page.getByLabel("New subtask").fill("Hero image");
  await page.getByLabel("New subtask").press("Enter");
  await page.getByRole("link", { name: "Hero image" }).waitFor();
});

await steps.step("comment with an @mention and reply", async () => {
  const box = page.getByRole("textbox", { name: "Comment", exact: true });
  await box.click();
  await page.keyboard.type("Could you review this, @bo");
  await page.locator(".mention-menu [role=option]", { hasText: mate.name }).waitFor();
  await page.keyboard.press("Enter");
  await page.keyboard.type("? Thanks!");
  const posted = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/comments"));
  await page.getByRole("button", { name: "Comment", exact: true }).click();
  const res = await posted;
  expect(res.status() === 201, "comment created");
  const c = await res.json();
  expect(c.mentions.includes(state.bobId) && c.body.includes(`@[${mate.name}](user:${state.bobId})`), `the comment mentions Bob: ${c.body}`);
  await page.locator(".comment .mention", { hasText: `@${mate.name}` }).waitFor();
  await page.getByRole("button", { name: "Reply" }).click();
  await page.getByRole("textbox", { name: /Reply to/ }).click();
  await page.keyboard.type("Adding the brand guide link later.");
  await page.keyboard.press("Control+Enter");
  await page.locator(".replies .comment", { hasText: "brand guide" }).waitFor();
  await axeCheck(page, "task detail");
  await screenshot(page, "task");
});

await steps.step("after a reload the task keeps everything", async () => {
  await page.reload();
  await page.getByTestId("description").locator(".mention", { hasText: mate.name }).waitFor();
  await page.getByTestId("description").locator("strong", { hasText: "Deadline matters." }).waitFor();
  expect((await page.getByLabel("Priority", { exact: true }).inputValue()) === "high", "priority kept");
  expect((await page.getByLabel("Due date", { exact: true }).inputValue()) === "2031-03-15", "due date kept");
  await page.locator(".tag-chip", { hasText: "marketing" }).waitFor();
  await page.locator(".comment .mention", { hasText: `@${mate.name}` }).waitFor();
  await page.locator(".replies .comment", { hasText: "brand guide" }).waitFor();
  await page.getByRole("link", { name: "Hero image" }).waitFor();
  await page.locator(".activity-list").getByText("changed status from In progress to Done").waitFor();
  // Editing again starts from the rendered description and keeps the mention intact.
  await page.getByRole("button", { name: "Edit description" }).click();
  await page.getByRole("textbox", { name: "Description" }).click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(" Second pass.");
  const patched = page.waitForResponse(isPatch);
  await page.getByRole("region", { name: "Description" }).getByRole("button", { name: "Save", exact: true }).click();
  const md = JSON.parse((await patched).request().postData()).description;
  expect(md.includes(` @[${mate.name}](user:${state.bobId})`) && !md.includes("@@") && md.includes("Second pass.**"), `re-edited Markdown: ${md}`);
  await page.getByTestId("description").getByText("Second pass.").waitFor();
  await page.goto(`/projects/${state.projectId}/board`);
  await column(page, "Done").locator('li.task-card[data-key="WEB-1"]').waitFor();
});

await steps.step("the teammate sees the task, the mention and it in My tasks", async () => {
  await page2.goto("/my-tasks");
  await page2.getByRole("link", { name: "Design the homepage" }).click();
  await page2.locator(".comment .mention", { hasText: `@${mate.name}` }).waitFor();
  await page2.getByRole("link", { name: "Website relaunch" }).waitFor();
});

await steps.step("a teammate's change arrives live; a tab that missed it gets 412, rolled back and reloaded", async () => {
  await page.goto("/tasks/WEB-3");
  await page.getByLabel("Priority", { exact: true }).waitFor();
  // A second tab whose live connection hears nothing (as if it had missed the event) keeps the old version.
  const stale = await ctx.newPage();
  stale.setDefaultTimeout(10_000);
  stale.on("pageerror", (e) => pageErrors.push(e.message));
  await stale.routeWebSocket(/\/api\/v1\/ws$/, () => {});
  await stale.goto("/tasks/WEB-3");
  await stale.getByLabel("Priority", { exact: true }).waitFor();
  const t = await apiCall(ctx2, base, "GET", "/tasks/WEB-3");
  const upd = await apiCall(ctx2, base, "PATCH", `/tasks/${t.json.id}`, { priority: "urgent" }, { "If-Match": `"${t.json.version}"` });
  expect(upd.status === 200, `Bob's change landed: ${upd.status}`);
  // The open task screen follows the task over the websocket: no reload needed.
  await page.waitForFunction(() => document.querySelector("#prop-priority")?.value === "urgent");
  const patched = stale.waitForResponse(isPatch);
  await stale.getByLabel("Priority", { exact: true }).selectOption("low");
  expect((await patched).status() === 412, "the stale write answered 412");
  await toastTitled(stale, "Changed by someone else").waitFor();
  await stale.waitForFunction(() => document.querySelector("#prop-priority")?.value === "urgent");
  await stale.close();
});

await steps.step("an expired access cookie is renewed once through /auth/refresh", async () => {
  await ctx.clearCookies({ name: "tf_access" });
  const refreshed = page.waitForResponse((r) => r.url().endsWith("/api/v1/auth/refresh"));
  await navLink(page, "Trash").click(); // not visited yet: its list must be fetched
  expect((await refreshed).status() === 200, "the refresh succeeded");
  await page.getByText("The trash is empty").waitFor();
  expect((await ctx.cookies()).some((c) => c.name === "tf_access"), "a new access cookie was set");
});

await steps.step("list view: grouped, filtered, sorted, paged (axe)", async () => {
  await page.goto(`/projects/${state.projectId}/list`);
  const table = page.getByRole("table", { name: /Tasks of Website relaunch/ });
  await table.waitFor();
  for (const g of ["To do", "In progress", "Done"]) await table.locator("tr.group-row", { hasText: g }).waitFor();
  await page.getByLabel("Assignee").selectOption({ label: mate.name });
  await page.waitForURL(/assignee=/);
  await page.waitForFunction(() => document.querySelectorAll("table tbody tr:not(.group-row)").length === 1); // only Bob's task matches
  await table.getByRole("link", { name: "Design the homepage" }).waitFor();
  await page.getByRole("button", { name: "Clear filters" }).click();
  await page.getByRole("button", { name: /Title/ }).click();
  await page.waitForURL(/sort=title/);
  await table.getByRole("link", { name: "Hero image" }).waitFor();
  await axeCheck(page, "list view");
  await screenshot(page, "list");
});

await steps.step("project and workspace activity feeds (axe)", async () => {
  await page.goto(`/projects/${state.projectId}/activity`);
  await page.getByText("created task “Design the homepage”").waitFor();
  await navLink(page, "Activity").click();
  await page.getByText("joined the workspace").waitFor();
  await axeCheck(page, "workspace activity");
  await screenshot(page, "activity");
});

await steps.step("delete a task, find it in the trash, restore it (axe)", async () => {
  await page.goto("/tasks/WEB-2");
  await page.getByRole("button", { name: "Delete task" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Move to trash" }).click();
  await page.waitForURL(/\/board$/);
  await card(page, "WEB-1").waitFor();
  expect((await card(page, "WEB-2").count()) === 0, "WEB-2 left the board");
  await navLink(page, "Trash").click();
  await page.getByRole("cell", { name: "Write the copy", exact: true }).waitFor();
  await axeCheck(page, "trash");
  await screenshot(page, "trash");
  await page.getByRole("button", { name: "Restore task Write the copy" }).click();
  await page.getByText("The trash is empty").waitFor();
  await page.goto(`/projects/${state.projectId}/board`);
  await card(page, "WEB-2").waitFor();
});

await steps.step("plan limits come back with an upgrade hint", async () => {
  for (let i = 2; i <= 5; i++) {
    const r = await apiCall(ctx, base, "POST", "/projects", { name: `Project ${i}` });
    expect(r.status === 201, `project ${i} created: ${r.status}`);
  }
  await page.goto("/projects?new=1");
  await page.getByRole("dialog").getByLabel("Name").fill("One too many");
  await page.getByRole("dialog").getByRole("button", { name: "Create project" }).click();
  await page.getByRole("dialog").getByText("Plan limit reached").waitFor();
  await page.getByRole("dialog").getByRole("link", { name: "Upgrade the plan" }).waitFor();
  await page.keyboard.press("Escape");
  await axeCheck(page, "projects");
  await screenshot(page, "projects");
});

await steps.step("workspace settings: the brand colour is applied (axe)", async () => {
  await navLink(page, "Workspace settings").click();
  await page.getByLabel("Workspace name").waitFor();
  await page.getByText("5 of 5").waitFor();
  await axeCheck(page, "settings");
  await page.getByTestId("primary-hex").fill("#0f766e");
  const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().endsWith("/api/v1/workspace"));
  await page.getByRole("button", { name: "Save settings" }).click();
  expect((await saved).status() === 200, "settings saved");
  await toastTitled(page, "Workspace settings saved").waitFor();
  const probe = () => page.evaluate(() => [getComputedStyle(document.documentElement).getPropertyValue("--brand-primary").trim(), getComputedStyle(document.querySelector(".topbar")).borderBottomColor]);
  let [v, bg] = await probe();
  expect(v === "#0f766e" && bg === "rgb(15, 118, 110)", `brand applied: ${v} ${bg}`);
  await screenshot(page, "settings");
  await page.goto("/projects");
  await page.reload();
  await page.getByRole("button", { name: "New project" }).waitFor();
  await page.waitForFunction(() => getComputedStyle(document.documentElement).getPropertyValue("--brand-primary").trim() === "#0f766e");
  [v, bg] = await probe();
  expect(v === "#0f766e" && bg === "rgb(15, 118, 110)", `brand kept after reload: ${v} ${bg}`);
  await page2.goto("/");
  await page2.getByRole("heading", { name: "Welcome, Bob" }).waitFor();
  await page2.waitForFunction(() => getComputedStyle(document.documentElement).getPropertyValue("--brand-primary").trim() === "#0f766e");
});

await steps.step("profile: save preferences, change password; the checklist completes (axe)", async () => {
  await page.getByRole("button", { name: /Ada Owner.*account menu/ }).click();
  await page.getByRole("menuitem", { name: "Profile" }).click();
  await page.getByRole("heading", { name: "Your profile" }).waitFor();
  await axeCheck(page, "profile");
  await page.getByLabel("Timezone").selectOption("Europe/Berlin");
  await page.getByRole("checkbox", { name: "Someone mentions me: by email" }).uncheck();
  await page.getByRole("button", { name: "Save profile" }).click();
  await toastTitled(page, "Profile saved").waitFor();
  await screenshot(page, "profile");
  await page.getByLabel("Current password").fill("not my password");
  await page.getByLabel("New password").fill("a brand new secret");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByText("the current password is not correct").waitFor();
  const me = await apiCall(ctx, base, "GET", "/me");
  expect(me.json.timezone === "Europe/Berlin" && me.json.notifications.mentions.email === false, "profile saved on the server");
  await navLink(page, "Home").click();
  await page.getByText("4 of 4 done").waitFor();
  await screenshot(page, "home");
});

await steps.step("people: change a role, deactivate — the teammate's session ends", async () => {
  await navLink(page, "People").click();
  await page.getByText("No pending invitations.").waitFor();
  const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().includes("/api/v1/members/"));
  await page.getByLabel(`Role of ${mate.name}`).selectOption("admin");
  expect((await saved).status() === 200, "role changed");
  await axeCheck(page, "people");
  await page.locator(`tr[data-member-email="${mate.email}"]`).getByRole("button", { name: "Deactivate" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Deactivate" }).click();
  await toastTitled(page, "was deactivated").waitFor();
  await page2.reload();
  await page2.waitForURL(/\/signin/);
  await page2.getByRole("heading", { name: "Sign in" }).waitFor();
});

await steps.step("my tasks lists what is assigned to me (axe)", async () => {
  const t = await apiCall(ctx, base, "GET", "/tasks/WEB-4");
  const me = await apiCall(ctx, base, "GET", "/me");
  await apiCall(ctx, base, "PATCH", `/tasks/${t.json.id}`, { assignees: [me.json.id], due: "2030-01-10" });
  await navLink(page, "My tasks").click();
  await page.getByRole("link", { name: "Pick a font" }).waitFor();
  await axeCheck(page, "my tasks");
  await screenshot(page, "my-tasks");
});

await steps.step("at a phone's width the board scrolls in itself and the menu opens (axe)", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`/projects/${state.projectId}/board`);
  await card(page, "WEB-1").waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 0, `no page-wide horizontal scroll (overflow ${overflow}px)`);
  await axeCheck(page, "board (phone)");
  await screenshot(page, "board-phone");
  for (const [path, ready, name] of [
    ["/tasks/WEB-1", () => page.getByRole("heading", { name: "Comments" }).waitFor(), "task (phone)"],
    ["/people", () => page.getByRole("table", { name: "Members" }).waitFor(), "people (phone)"],
    ["/settings", () => page.getByLabel("Workspace name").waitFor(), "settings (phone)"],
    [`/projects/${state.projectId}/list`, () => page.getByRole("table", { name: /Tasks of/ }).waitFor(), "list (phone)"],
  ]) {
    await page.goto(path);
    await ready();
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(o <= 0, `${name}: no page-wide horizontal scroll (overflow ${o}px)`);
    await axeCheck(page, name);
    if (name === "task (phone)") await screenshot(page, "task-phone");
  }
  await page.getByRole("button", { name: "Menu", exact: true }).click();
  await navLink(page, "Trash").click();
  await page.getByRole("heading", { name: "Trash" }).waitFor();
  await page.setViewportSize(viewport);
});

await steps.step("on-prem first run: the one-time setup link creates the first workspace (axe)", async () => {
  const onprem = await startServer({ mode: "onprem" });
  try {
    const [, path] = await onprem.waitForOutput(/https?:\/\/[^/\s]+(\/setup\?token=[\w-]+)/);
    const c = await browser.newContext({ baseURL: onprem.url, viewport });
    const p = await c.newPage();
    p.setDefaultTimeout(10_000);
    await p.goto("/signin");
    await p.getByText("This installation is not set up yet").waitFor();
    expect((await p.getByRole("link", { name: "Create a workspace" }).count()) === 0, "no signup link on-prem");
    await p.goto("/setup");
    await p.getByText("Open the one-time setup link").waitFor();
    await p.goto(path);
    await p.getByRole("button", { name: "Finish setup" }).waitFor();
    await axeCheck(p, "first-run setup");
    await screenshot(p, "setup");
    await p.getByLabel("Workspace name").fill("Initech");
    await p.getByLabel("Your name").fill("Iris Admin");
    await p.getByLabel("Email").fill("iris@initech.example");
    await p.getByLabel("Password").fill("first run password");
    await p.getByRole("button", { name: "Finish setup" }).click();
    await p.getByRole("heading", { name: "Welcome, Iris" }).waitFor();
    await p.goto("/setup");
    await p.getByText("This installation is already set up").waitFor();
    await c.close();
  } finally {
    await onprem.stop();
  }
});

await steps.step("no uncaught errors in the page", async () => {
  expect(pageErrors.length === 0, `page errors: ${pageErrors.join(" | ")}`);
});

await browser.close();
await srv.stop();

const s = steps.summary();
const allViolations = axeLog.flatMap((l) => l.violations.map((v) => `${l.screen}: [${v.impact}] ${v.id}`));
console.log(`\naxe-core: ${axeLog.length} screens checked; serious/critical: 0 where passed; other findings: ${allViolations.length ? "\n  " + [...new Set(allViolations)].join("\n  ") : "none"}`);
console.log(`e2e took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
process.exit(s.failed || s.skipped ? 1 : 0);
