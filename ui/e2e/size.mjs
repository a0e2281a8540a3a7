// Measures the first screen's JavaScript: the entry script of index.html and
// every chunk it preloads (what a browser fetches before anything lazy),
// gzipped at level 9. Lazy screens (board, task detail, editor…) are not
// counted. `npm run size` measures ui/dist; the e2e test measures what the
// running binary serves.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

export const BUDGET_BYTES = 300 * 1024;

/** get(path) → Buffer of that file ("/index.html", "/assets/…"). */
export async function firstScreenSize(get) {
  const html = (await get("/index.html")).toString("utf8");
  const refs = new Set();
  for (const m of html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)) refs.add(m[1]);
  for (const m of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+)"/g)) refs.add(m[1]);
  const files = [];
  for (const ref of refs) {
    const buf = await get(ref);
    files.push({ file: ref, raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length });
  }
  const css = [...html.matchAll(/<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"/g)].map((m) => m[1]);
  let cssGzip = 0;
  for (const ref of css) cssGzip += gzipSync(await get(ref), { level: 9 }).length;
  const gzip = files.reduce((n, f) => n + f.gzip, 0);
  const raw = files.reduce((n, f) => n + f.raw, 0);
  return { files, gzip, raw, cssGzip };
}

export function report(s) {
  const kb = (n) => (n / 1024).toFixed(1) + " kB";
  return `first screen JS: ${kb(s.gzip)} gzipped (${kb(s.raw)} raw) in ${s.files.length} file(s) [${s.files.map((f) => `${f.file} ${kb(f.gzip)}`).join(", ")}]; CSS ${kb(s.cssGzip)} gzipped; budget ${kb(BUDGET_BYTES)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dist = join(fileURLToPath(new URL("..", import.meta.url)), "dist");
  const s = await firstScreenSize(async (p) => readFileSync(join(dist, p.replace(/^\//, ""))));
  console.log(report(s));
  if (s.gzip > BUDGET_BYTES) {
    console.error("over budget");
    process.exit(1);
  }
}
