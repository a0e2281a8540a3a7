// Shared pieces of the browser tests and the benchmark: a real `teamflow
// serve` on a free loopback port, headless Chromium through playwright-core,
// axe-core checks, screenshots, and a tiny step runner.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const UI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const SCREENSHOT_DIR = resolve(UI_DIR, "../docs/screenshots");

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Starts teamflow (cloud mode unless told) on a fresh data dir; resolves once /readyz answers 200. */
export async function startServer({ bin = process.env.TEAMFLOW_BIN, deadlineMs = 30_000, mode = "cloud", extraArgs = [] } = {}) {
  if (!bin) throw new Error("set TEAMFLOW_BIN to the teamflow binary (e.g. TEAMFLOW_BIN=$PWD/../bin/teamflow)");
  if (!existsSync(bin)) throw new Error(`TEAMFLOW_BIN=${bin} does not exist: build it first (make build)`);
  const data = mkdtempSync(join(tmpdir(), "teamflow-e2e-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(bin, ["serve", "--mode", mode, "--data", data, "--addr", `127.0.0.1:${port}`, "--base-url", url, "--log-level", "warn", ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  let exited = null;
  proc.on("exit", (code, sig) => (exited = { code, sig }));

  const stop = async () => {
    if (exited === null) {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await new Promise((r) => (exited !== null ? r() : proc.once("exit", r)));
      clearTimeout(t);
    }
    rmSync(data, { recursive: true, force: true });
  };

  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`teamflow exited before it was ready (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const r = await fetch(url + "/readyz");
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`teamflow was not ready within ${deadlineMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  /** Waits (bounded) until the server's output matches re; returns the match. */
  const waitForOutput = async (re, ms = 10_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(output);
      if (m) return m;
      if (Date.now() > end) throw new Error(`no ${re} in the server's output:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { url, port, data, stop, output: () => output, waitForOutput };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/**
 * A fake camera and microphone (a test pattern and a beep) that getUserMedia
 * may use without asking: for recording messages in files.mjs.
 */
export const FAKE_MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

/** Headless Debian chromium; playwright gives each launch a fresh temporary profile (user-data-dir). */
export async function launchBrowser({ media = false } = {}) {
  const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (!existsSync(executablePath)) throw new Error(`${executablePath} not found: run scripts/install-test-deps.sh (apt-get install chromium)`);
  return chromium.launch({ executablePath, headless: true, args: media ? [...CHROMIUM_ARGS, ...FAKE_MEDIA_ARGS] : CHROMIUM_ARGS, timeout: 30_000 });
}

const axeSource = () => readFileSync(join(UI_DIR, "node_modules/axe-core/axe.min.js"), "utf8");
let axeCache = null;

/**
 * Runs axe-core in the page (injected through the devtools protocol, which the
 * page's CSP does not govern) and returns the serious and critical violations.
 */
export async function axeCheck(page, name) {
  axeCache ??= axeSource();
  const has = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!has) await page.evaluate(axeCache + "\n;0");
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"], runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  axeLog.push({ screen: name, violations: result });
  if (bad.length) {
    throw new Error(`axe found ${bad.length} serious/critical violation(s) on ${name}:\n` + bad.map((v) => `  [${v.impact}] ${v.id}: ${v.help} at ${v.nodes.join(", ")}`).join("\n"));
  }
  return result;
}
export const axeLog = [];

/** Screenshots are refreshed only with UPDATE_SCREENSHOTS=1, so CI never dirties the tree. */
export async function screenshot(page, name, opts = {}) {
  if (process.env.UPDATE_SCREENSHOTS !== "1") return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.evaluate(() => document.fonts?.ready);
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: false, animations: "disabled", caret: "hide", ...opts });
}

/** Calls the API from a browser context (its cookies), with the CSRF header on writes. */
export async function apiCall(context, baseURL, method, path, body, headers = {}) {
  const cookies = await context.cookies(baseURL);
  const csrf = cookies.find((c) => c.name === "tf_csrf")?.value ?? "";
  const res = await context.request.fetch(baseURL + "/api/v1" + path, {
    method,
    headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json", ...headers },
    data: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status(), json, headers: res.headers() };
}

/** A sequence of dependent steps: after a failure the rest are skipped. */
export class Steps {
  constructor() {
    this.results = [];
    this.failed = false;
  }
  async step(name, fn) {
    if (this.failed) {
      this.results.push({ name, status: "skipped" });
      console.log(`  - ${name} (skipped)`);
      return;
    }
    const t0 = Date.now();
    try {
      await fn();
      const ms = Date.now() - t0;
      this.results.push({ name, status: "passed", ms });
      console.log(`  ✓ ${name} (${ms} ms)`);
    } catch (e) {
      this.failed = true;
      this.results.push({ name, status: "failed", error: e });
      console.log(`  ✗ ${name}\n${String(e?.stack ?? e).split("\n").map((l) => "      " + l).join("\n")}`);
      if (this.onFail) await this.onFail(name).catch(() => {});
    }
  }
  summary() {
    const c = (s) => this.results.filter((r) => r.status === s).length;
    return { passed: c("passed"), failed: c("failed"), skipped: c("skipped") };
  }
}

export function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}
