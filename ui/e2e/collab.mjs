// Collaboration screens against a real `teamflow serve --mode cloud`, with two
// people in two browser contexts: live board and task updates over the
// websocket and presence, follow/unfollow, the notification inbox and its
// unread badge, AI status updates (streamed) with their references linked to
// tasks, and teams. The workspace, the teammate and the tasks are made
// through the API; everything checked is checked in the browser.

import { apiCall, axeCheck, expect, launchBrowser, screenshot, startServer, Steps } from "./lib.mjs";

const t0 = Date.now();
const srv = await startServer();
const base = srv.url;
const browser = await launchBrowser();
const steps = new Steps();
const viewport = { width: 1280, height: 800 };
const opts = { baseURL: base, viewport, locale: "en-GB", timezoneId: "Europe/Berlin", reducedMotion: "reduce" };
const ctxA = await browser.newContext(opts);
const ctxB = await browser.newContext(opts);
const pageA = await ctxA.newPage();
const pageB = await ctxB.newPage();
const pageErrors = [];
for (const p of [pageA, pageB]) {
  p.setDefaultTimeout(10_000);
  p.on("pageerror", (e) => pageErrors.push(e.message));
}
const ada = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery" };
const bob = { name: "Bob Teammate", email: "bob@example.com", password: "another good secret" };
const state = {};

steps.onFail = async (name) => {
  for (const [who, p] of [["a", pageA], ["b", pageB]]) {
    const file = `/tmp/teamflow-e2e-collab-failure-${name.replace(/\W+/g, "-")}-${who}.png`;
    await p.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`      screenshot (${who}): ${file}; URL ${p.url()}`);
  }
};

const A = (method, path, body, headers) => apiCall(ctxA, base, method, path, body, headers);
const B = (method, path, body, headers) => apiCall(ctxB, base, method, path, body, headers);
const column = (p, status) => p.locator(`section.column[data-status="${status}"]`);
const card = (p, key) => p.locator(`li.task-card[data-key="${key}"]`);
const navLink = (p, name) => p.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
const badge = (p) => p.getByTestId("inbox-badge");
const waitUnread = (p, n) => p.waitForFunction((n) => document.querySelector('[data-testid="inbox-badge"]')?.getAttribute("data-unread") === String(n), n, { timeout: 10_000 });
const toastTitled = (p, text) => p.locator(".toast-title", { hasText: text });
// A live connection is up once the page has subscribed: the server then knows the page's presence.
const wsOpen = (p) => p.waitForEvent("websocket", { predicate: (ws) => ws.url().endsWith("/api/v1/ws"), timeout: 10_000 });

async function patchTask(call, key, body) {
  const t = await call("GET", `/tasks/${key}`);
  expect(t.status === 200, `GET task ${key}: ${t.status}`);
  const r = await call("PATCH", `/tasks/${t.json.id}`, body, { "If-Match": `"${t.json.version}"` });
  expect(r.status === 200, `PATCH ${key}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

console.log(`teamflow at ${base}`);

await steps.step("set up: a workspace, a teammate who accepted, a project with tasks (API)", async () => {
  let r = await A("POST", "/signup", { workspace_name: "Acme Corp", workspace_slug: "acme", name: ada.name, email: ada.email, password: ada.password, session_cookie: true });
  expect(r.status === 201, `signup: ${r.status} ${JSON.stringify(r.json)}`);
  state.ada = r.json.owner.id;
  r = await A("POST", "/invitations", { email: bob.email, role: "member" });
  expect(r.status === 201 && r.json.token, `invite: ${r.status} ${JSON.stringify(r.json)}`);
  r = await B("POST", `/invitations/${encodeURIComponent(r.json.token)}/accept`, { name: bob.name, password: bob.password, session_cookie: true });
  expect(r.status === 200 || r.status === 201, `accept: ${r.status} ${JSON.stringify(r.json)}`);
  r = await B("GET", "/me");
  state.bob = r.json.id;
  r = await A("POST", "/projects", { name: "Website", key: "WEB" });
  expect(r.status === 201, `project: ${r.status}`);
  state.project = r.json.id;
  for (const title of ["Fix the login page", "Write the launch post", "Plan the launch"]) {
    r = await A("POST", `/projects/${state.project}/tasks`, { title });
    expect(r.status === 201, `task: ${r.status}`);
  }
});

await steps.step("live board and activity: each sees the other viewing, and the other's changes without a reload", async () => {
  const [wa] = await Promise.all([wsOpen(pageA), pageA.goto(`/projects/${state.project}/board`)]);
  await card(pageA, "WEB-1").waitFor();
  expect(!wa.isClosed(), "Ada's live connection is open");
  await Promise.all([wsOpen(pageB), pageB.goto(`/projects/${state.project}/board`)]);
  await card(pageB, "WEB-1").waitFor();
  await pageA.getByTestId("presence").filter({ hasText: "Bob Teammate is also viewing this project" }).waitFor();
  await pageB.getByTestId("presence").filter({ hasText: "Ada Owner is also viewing this project" }).waitFor();
  await axeCheck(pageA, "board with presence");
  await screenshot(pageA, "board-presence");
  // Ada changes a task elsewhere (the API): Bob's open board moves the card.
  await patchTask(A, "WEB-1", { status: "done" });
  await column(pageB, "Done").locator('li.task-card[data-key="WEB-1"]').waitFor();
  // Bob adds a task: it appears on Ada's board.
  const r = await B("POST", `/projects/${state.project}/tasks`, { title: "Bob's live task" });
  expect(r.status === 201, `Bob's task: ${r.status}`);
  await column(pageA, "To do").getByText("Bob's live task").waitFor();
  // Bob leaves for the workspace activity: Ada's presence line goes.
  await pageB.goto("/activity");
  await pageB.getByRole("heading", { name: "Activity" }).waitFor();
  await pageA.getByTestId("presence").waitFor({ state: "detached" });
  // The open activity feed follows the workspace: Ada's next change appears in it.
  await patchTask(A, "WEB-1", { priority: "high" });
  await pageB.locator(".activity-list li", { hasText: "changed priority from none to high" }).first().waitFor();
});

await steps.step("task detail: follow and unfollow, presence, and a teammate's edit shows live", async () => {
  await pageB.goto("/tasks/WEB-2");
  await pageB.getByRole("heading", { name: "Description" }).waitFor();
  const follow = pageB.getByTestId("follow");
  await follow.waitFor();
  // The creator follows what they made; Bob does not yet.
  expect((await follow.getAttribute("aria-pressed")) === "false", "Bob does not follow WEB-2 yet");
  const isFollow = (m) => (r) => r.request().method() === m && r.url().endsWith("/follow");
  await Promise.all([pageB.waitForResponse(isFollow("PUT")), follow.click()]);
  await pageB.getByRole("button", { name: "Following" }).waitFor();
  expect((await B("GET", "/tasks/WEB-2/follow")).json.following === true, "the server has Bob following");
  await pageB.reload();
  await pageB.getByRole("button", { name: "Following" }).waitFor();
  await pageA.goto("/tasks/WEB-2");
  await pageA.getByTestId("presence").filter({ hasText: "Bob Teammate is also viewing this task" }).waitFor();
  await pageB.getByTestId("presence").filter({ hasText: "Ada Owner is also viewing this task" }).waitFor();
  await axeCheck(pageB, "task detail with follow and presence");
  // Ada renames it through the API: Bob's open title follows.
  await patchTask(A, "WEB-2", { title: "Write the launch post (v2)" });
  await pageB.waitForFunction(() => document.querySelector("#task-title-input")?.value === "Write the launch post (v2)");
  // Unfollow and follow again (the button is a toggle).
  await Promise.all([pageB.waitForResponse(isFollow("DELETE")), pageB.getByRole("button", { name: "Following" }).click()]);
  await pageB.getByRole("button", { name: "Follow", exact: true }).waitFor();
  expect((await B("GET", "/tasks/WEB-2/follow")).json.following === false, "unfollowed on the server");
  await Promise.all([pageB.waitForResponse(isFollow("PUT")), pageB.getByRole("button", { name: "Follow", exact: true }).click()]);
  await pageB.getByRole("button", { name: "Following" }).waitFor();
});

await steps.step("inbox: an assignment and a comment arrive live; the unread badge counts them", async () => {
  await pageB.goto("/my-tasks");
  await waitUnread(pageB, 0);
  // Assigned to Bob: the badge goes to 1 on Bob's open page, without a reload.
  await patchTask(A, "WEB-3", { assignees: [state.bob] });
  await waitUnread(pageB, 1);
  expect((await badge(pageB).getAttribute("aria-label")) === "Inbox, 1 unread", "the badge says how many are unread");
  // The new assignment also reaches Bob's open My tasks list.
  await pageB.getByRole("link", { name: "Plan the launch" }).waitFor();
  // A comment on a task Bob follows.
  const r = await A("POST", "/tasks/WEB-2/comments", { body: "Draft is ready for review" });
  expect(r.status === 201, `comment: ${r.status}`);
  await waitUnread(pageB, 2);
  await navLink(pageB, "Inbox 2 unread").click();
  await pageB.getByRole("heading", { name: "Inbox" }).waitFor();
  const items = pageB.getByRole("list", { name: "Notifications" }).locator("li.inbox-item");
  await pageB.waitForFunction(() => document.querySelectorAll('li.inbox-item[data-unread="true"]').length === 2);
  const texts = await items.allTextContents();
  expect(texts.some((t) => t.includes("Ada Owner assigned you to Plan the launch")), `an assignment item: ${texts}`);
  expect(texts.some((t) => t.includes("Ada Owner commented on Write the launch post (v2)") && t.includes("Draft is ready for review")), `a comment item with its excerpt: ${texts}`);
  await pageB.getByTestId("unread-summary").filter({ hasText: "2 unread" }).waitFor();
  await axeCheck(pageB, "inbox");
  await screenshot(pageB, "inbox");
});

await steps.step("inbox: mark one read, open one (marks it read), unread filter, mark all read", async () => {
  await pageB.getByRole("button", { name: /^Mark read: Ada Owner assigned you/ }).click();
  await waitUnread(pageB, 1);
  await pageB.getByTestId("unread-summary").filter({ hasText: "1 unread" }).waitFor();
  // The unread filter shows only the comment.
  await pageB.getByRole("navigation", { name: "Inbox filter" }).getByRole("link", { name: /Unread/ }).click();
  await pageB.waitForURL(/\/inbox\?show=unread/);
  await pageB.waitForFunction(() => document.querySelectorAll("li.inbox-item").length === 1);
  // Opening it goes to the task and marks it read.
  await pageB.getByRole("link", { name: /commented on Write the launch post/ }).click();
  await pageB.waitForURL(/\/tasks\//);
  await pageB.getByRole("heading", { name: "Description" }).waitFor();
  await waitUnread(pageB, 0);
  // Two more arrive; "Mark all as read" clears them.
  await A("POST", "/tasks/WEB-2/comments", { body: "One more thing" });
  await patchTask(A, "WEB-2", { status: "in_progress" });
  await pageB.goto("/inbox");
  await pageB.getByTestId("unread-summary").filter({ hasText: /^[1-9]\d* unread$/ }).waitFor();
  await pageB.getByRole("button", { name: "Mark all as read" }).click();
  await pageB.getByTestId("unread-summary").filter({ hasText: "Nothing unread." }).waitFor();
  await waitUnread(pageB, 0);
  expect((await B("GET", "/notifications", undefined)).json.unread === 0, "the server agrees nothing is unread");
  await pageB.getByRole("navigation", { name: "Inbox filter" }).getByRole("link", { name: /Unread/ }).click();
  await pageB.getByText("You're all caught up").waitFor();
});

await steps.step("notification preferences: turning comments off in the app keeps them out of the inbox", async () => {
  await pageB.goto("/profile");
  const box = pageB.getByLabel("Comments on tasks I follow: in the app");
  await box.waitFor();
  expect(await box.isChecked(), "comments are on by default");
  await box.uncheck();
  await pageB.getByRole("button", { name: "Save profile" }).click();
  await toastTitled(pageB, "Profile saved").waitFor();
  expect((await B("GET", "/me")).json.notifications.comments.in_app === false, "saved on the server");
  await A("POST", "/tasks/WEB-2/comments", { body: "Quiet comment" });
  // An assignment still arrives (proves the stream is live), the comment does not.
  await patchTask(A, "WEB-1", { assignees: [state.bob] });
  await waitUnread(pageB, 1);
  const list = await B("GET", "/notifications");
  expect(list.json.items.every((n) => n.excerpt !== "Quiet comment"), "no inbox item for the comment");
  await pageB.getByLabel("Comments on tasks I follow: in the app").check();
  const [saved] = await Promise.all([pageB.waitForResponse((r) => r.url().endsWith("/api/v1/me") && r.request().method() === "PATCH"), pageB.getByRole("button", { name: "Save profile" }).click()]);
  expect(saved.status() === 200 && (await saved.json()).notifications.comments.in_app === true, "turned back on");
});

await steps.step("status update: written as a stream, references linked to tasks, published (axe)", async () => {
  await navLink(pageA, "Status updates").click();
  await pageA.getByRole("heading", { name: "Status updates" }).waitFor();
  await pageA.getByLabel("Project").waitFor();
  expect((await pageA.getByLabel("Project").inputValue()) === state.project, "the project is chosen");
  await pageA.getByText("None yet.").waitFor();
  await axeCheck(pageA, "status updates");
  await pageA.getByLabel("The past week").check();
  const [res] = await Promise.all([
    pageA.waitForResponse((r) => r.url().endsWith(`/projects/${state.project}/status-updates/stream`)),
    pageA.getByRole("button", { name: "Write update" }).click(),
  ]);
  expect(res.status() === 200 && (res.headers()["content-type"] ?? "").startsWith("text/event-stream"), `streamed: ${res.status()} ${res.headers()["content-type"]}`);
  const body = await res.text();
  expect(/^event: text$/m.test(body) && /^event: update$/m.test(body), "the stream has text chunks and then the update");
  const update = pageA.getByRole("region", { name: "New update" }).getByTestId("status-update");
  await update.waitFor();
  expect((await update.getAttribute("data-status")) === "draft", "a draft");
  const text = update.getByTestId("status-text");
  await text.getByText("WEB-1 Fix the login page").waitFor();
  // [C1] (completed) is a link to WEB-1.
  const ref = text.locator("a.ref-link", { hasText: "[C1]" });
  expect((await ref.getAttribute("href")) === "/tasks/WEB-1", `C1 links to its task: ${await ref.getAttribute("href")}`);
  await update.getByText(/References \(\d+\)/).click();
  await update.getByTestId("status-refs").getByRole("link", { name: "WEB-1 Fix the login page" }).waitFor();
  await axeCheck(pageA, "status update written");
  await screenshot(pageA, "status-update");
  await update.getByRole("button", { name: "Publish" }).click();
  await toastTitled(pageA, "Update published").waitFor();
  await pageA.waitForFunction(() => document.querySelector('[data-testid="status-update"]')?.getAttribute("data-status") === "published");
  await pageA.getByTestId("status-usage").filter({ hasText: /^1 of \d+ this month$/ }).waitFor();
  // The reference opens the task.
  await ref.click();
  await pageA.waitForURL(/\/tasks\/WEB-1$/);
  await pageA.getByRole("heading", { name: "Description" }).waitFor();
  // Back on the screen, it is listed with the earlier updates.
  await pageA.goBack();
  await pageA.getByRole("region", { name: "Earlier updates" }).getByTestId("status-update").first().waitFor();
});

await steps.step("teams (Owners and Admins): create with members, projects, timezone and schedule; edit; team update", async () => {
  expect((await navLink(pageB, "Teams").count()) === 0, "a Member has no Teams entry");
  await navLink(pageA, "Teams").click();
  await pageA.getByRole("heading", { name: "Teams", exact: true }).waitFor();
  await pageA.getByText("No teams yet").waitFor();
  await pageA.getByRole("button", { name: "New team" }).click();
  const dialog = pageA.getByRole("dialog", { name: "New team" });
  await dialog.getByLabel("Team name").fill("Launch crew");
  await dialog.getByRole("group", { name: "Members" }).getByLabel("Ada Owner").check();
  await dialog.getByRole("group", { name: "Members" }).getByLabel("Bob Teammate").check();
  await dialog.getByRole("group", { name: "Projects" }).getByLabel("Website").check();
  await dialog.getByLabel("Team timezone").selectOption("Asia/Tokyo");
  await dialog.getByLabel("How often").selectOption("weekly");
  await dialog.getByLabel("On", { exact: true }).selectOption({ label: "Friday" });
  await dialog.getByLabel("At", { exact: true }).selectOption({ label: "16:00" });
  await axeCheck(pageA, "new team dialog");
  await dialog.getByRole("button", { name: "Create team" }).click();
  await toastTitled(pageA, "Created Launch crew").waitFor();
  const row = pageA.locator('tr[data-team="Launch crew"]');
  await row.getByText("Every Friday at 16:00 (Asia/Tokyo)").waitFor();
  await row.getByText("Ada Owner, Bob Teammate").waitFor();
  await row.getByText("Website").waitFor();
  await row.getByText(/^Next: /).waitFor();
  const teams = (await A("GET", "/teams")).json.items;
  expect(teams.length === 1 && teams[0].timezone === "Asia/Tokyo" && teams[0].schedule.frequency === "weekly" && teams[0].schedule.weekday === 5 && teams[0].schedule.hour === 16, `saved: ${JSON.stringify(teams)}`);
  await axeCheck(pageA, "teams");
  await screenshot(pageA, "teams");
  // Edit: every working day at 09:00.
  await pageA.getByRole("button", { name: "Edit team Launch crew" }).click();
  const edit = pageA.getByRole("dialog", { name: "Edit Launch crew" });
  await edit.getByLabel("How often").selectOption("daily");
  await edit.getByLabel("At", { exact: true }).selectOption({ label: "09:00" });
  await edit.getByRole("button", { name: "Save team" }).click();
  await row.getByText("Every working day at 09:00 (Asia/Tokyo)").waitFor();
  // The team's own update, from its row.
  await row.getByRole("link", { name: "Launch crew" }).click();
  await pageA.waitForURL(/\/status-updates\?team=/);
  expect((await pageA.getByLabel("For").inputValue()) === "team", "the team is chosen");
  await pageA.getByRole("button", { name: "Write update" }).click();
  const u = pageA.getByRole("region", { name: "New update" }).getByTestId("status-update");
  await u.getByTestId("status-text").getByText("Website", { exact: false }).first().waitFor();
});

await steps.step("search: words with highlights, filters, a saved filter applied and deleted (axe)", async () => {
  const probe = await A("GET", "/search?q=launch");
  if (probe.status === 404) {
    console.log("      skipped: this binary has no GET /api/v1/search");
    return;
  }
  // The index follows applied commands: wait (bounded) until it has the tasks.
  for (const end = Date.now() + 10_000; ; ) {
    const r = await A("GET", "/search?q=launch&kind=task");
    if (r.status === 200 && r.json.items.length >= 2) break;
    expect(Date.now() < end, `the index did not catch up: ${r.status} ${JSON.stringify(r.json)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  await navLink(pageA, "Search").click();
  await pageA.getByRole("heading", { name: "Search", exact: true }).waitFor();
  await pageA.getByText("Search tasks, projects and comments").first().waitFor();
  await pageA.getByLabel("Search", { exact: true }).fill("launch");
  await pageA.getByRole("button", { name: "Search", exact: true }).click();
  await pageA.waitForURL(/\/search\?q=launch/);
  const results = pageA.getByRole("list", { name: "Search results" });
  await results.getByRole("link", { name: "Plan the launch" }).waitFor();
  await results.getByRole("link", { name: "Write the launch post (v2)" }).waitFor();
  expect((await results.locator("mark", { hasText: /^launch$/i }).count()) >= 2, "matches are highlighted");
  await axeCheck(pageA, "search results");
  await screenshot(pageA, "search");
  // Status filter: only the to-do one is left.
  await pageA.getByLabel("Status").selectOption("todo");
  await pageA.waitForURL(/status=todo/);
  await results.getByRole("link", { name: "Write the launch post (v2)" }).waitFor({ state: "detached" });
  await results.getByRole("link", { name: "Plan the launch" }).waitFor();
  // Save it, shared.
  await pageA.getByRole("button", { name: "Save this search" }).click();
  const dialog = pageA.getByRole("dialog", { name: "Save this search" });
  await dialog.getByText("Query: launch status:todo").waitFor();
  await dialog.getByLabel("Name").fill("Launch to do");
  await dialog.getByLabel("Share with the whole workspace").check();
  await axeCheck(pageA, "save filter dialog");
  await dialog.getByRole("button", { name: "Save filter" }).click();
  await toastTitled(pageA, "Saved “Launch to do”").waitFor();
  const saved = (await A("GET", "/filters")).json.items;
  expect(saved.length === 1 && saved[0].query === "launch status:todo" && saved[0].shared, `saved: ${JSON.stringify(saved)}`);
  // Bob sees the shared filter and applies it.
  await pageB.goto("/search");
  await pageB.getByRole("button", { name: "Apply filter Launch to do: launch status:todo" }).click();
  await pageB.waitForURL(/\/search\?q=launch\+status%3Atodo/);
  await pageB.getByRole("list", { name: "Search results" }).getByRole("link", { name: "Plan the launch" }).waitFor();
  expect((await pageB.getByRole("button", { name: "Delete filter Launch to do" }).count()) === 0, "a Member cannot delete someone else's shared filter");
  // A result opens its task.
  await pageB.getByRole("link", { name: "Plan the launch" }).click();
  await pageB.waitForURL(/\/tasks\/WEB-3$/);
  // Ada deletes it.
  await pageA.getByRole("button", { name: "Delete filter Launch to do" }).click();
  await pageA.getByText("None yet. Search, then").waitFor();
  // Nothing found.
  await pageA.getByLabel("Search", { exact: true }).fill("zebracorn");
  await pageA.getByRole("button", { name: "Search", exact: true }).click();
  await pageA.getByText("Nothing found").waitFor();
});

await steps.step("phone width: inbox, status updates, teams and search have no page-wide horizontal scroll (axe)", async () => {
  await pageA.setViewportSize({ width: 390, height: 844 });
  for (const [path, name] of [["/inbox", "Inbox"], ["/status-updates", "Status updates"], ["/teams", "Teams"], ["/search?q=launch", "Search"]]) {
    await pageA.goto(path);
    await pageA.getByRole("heading", { name, exact: true }).waitFor();
    await pageA.waitForLoadState("networkidle").catch(() => {});
    const over = await pageA.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(over <= 1, `${path} scrolls sideways by ${over}px at 390 px`);
    await axeCheck(pageA, `${name} (phone)`);
  }
  await pageA.setViewportSize(viewport);
});

await steps.step("no uncaught page errors", async () => {
  expect(pageErrors.length === 0, `page errors:\n${pageErrors.join("\n")}`);
});

await browser.close();
await srv.stop();
const s = steps.summary();
console.log(`\ncollab: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
process.exit(s.failed ? 1 : 0);
