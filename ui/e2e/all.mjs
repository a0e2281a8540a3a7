// `npm run e2e`: the UI's browser tests one after the other (each starts its
// own server and browser): run.mjs (the product story), security.mjs
// (account security), collab.mjs (live collaboration) and files.mjs
// (attachments, recorded messages, security settings). Prints their output
// and one closing count. `node e2e/all.mjs files` runs only the suites whose
// file name starts with an argument.

import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const suites = ["run.mjs", "security.mjs", "collab.mjs", "files.mjs"].filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)));
const t0 = Date.now();
const total = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
let code = 0;
for (const file of suites) {
  console.log(`\n== e2e/${file}`);
  const out = await new Promise((resolve) => {
    let text = "";
    const p = spawn(process.execPath, [join(here, file)], { stdio: ["ignore", "pipe", "inherit"], env: process.env });
    p.stdout.on("data", (d) => {
      text += d;
      process.stdout.write(d);
    });
    p.on("exit", (c) => resolve({ text, code: c ?? 1 }));
  });
  const m = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/m.exec(out.text.split("\n").reverse().find((l) => /passed, \d+ failed/.test(l)) ?? "");
  if (m) {
    total.passed += +m[1];
    total.failed += +m[2];
    total.skipped += +(m[3] ?? 0);
  } else total.failed++;
  if (out.code !== 0) code = 1;
  // A failed step prints "  ✗ name" and its indented stack; keep them for the
  // recap, since CI logs are often read from the tail.
  const lines = out.text.split("\n");
  lines.forEach((l, i) => {
    if (!l.startsWith("  ✗ ")) return;
    let j = i + 1;
    while (j < lines.length && lines[j].startsWith("      ")) j++;
    failures.push(`e2e/${file}:\n${lines.slice(i, Math.min(j, i + 12)).join("\n")}`);
  });
}
if (failures.length) console.log(`\nfailed steps:\n${failures.join("\n")}`);
console.log(`\ne2e: ${suites.length} suite(s) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ""}`);
process.exit(code || total.failed ? 1 : 0);
