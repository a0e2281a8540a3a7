// An SMTP server inside the test (npm smtp-server), so the mail flows run
// end to end: teamflow sends through its outbox over real SMTP, the test
// reads what arrived (parsed with mailparser) and follows the links.

import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import { freePort } from "./lib.mjs";

export async function startMailCatcher() {
  const messages = [];
  const waiters = new Set();
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    size: 5 * 1024 * 1024,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((m) => {
          const msg = {
            to: (session.envelope.rcptTo ?? []).map((r) => r.address.toLowerCase()),
            from: session.envelope.mailFrom?.address ?? "",
            subject: m.subject ?? "",
            text: m.text ?? "",
            html: typeof m.html === "string" ? m.html : "",
            messageId: m.messageId ?? "",
            at: Date.now(),
          };
          messages.push(msg);
          for (const w of waiters) w();
          callback();
        })
        .catch((e) => callback(e));
    },
  });
  const port = await freePort();
  await new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(port, "127.0.0.1", res);
  });

  /**
   * Resolves with the first message (after `since`, an index into the list)
   * to `to` whose text matches re; rejects after ms.
   */
  function waitFor(to, re, { since = 0, ms = 15_000 } = {}) {
    const want = to.toLowerCase();
    const find = () => messages.slice(since).find((m) => m.to.includes(want) && (re.test(m.text) || re.test(m.html)));
    return new Promise((resolve, reject) => {
      const hit = find();
      if (hit) return resolve(hit);
      const check = () => {
        const m = find();
        if (m) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no mail to ${to} matching ${re} within ${ms} ms; got: ${messages.map((m) => `${m.to} “${m.subject}”`).join("; ") || "none"}`));
      }, ms);
      waiters.add(check);
    });
  }

  /** The path (and query) of the first link to base+prefix in a message. */
  function linkIn(msg, base, prefix) {
    const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const re = new RegExp(esc(base) + "(" + esc(prefix) + "[^\\s\"'<>)\\]]+)");
    const m = re.exec(msg.text) ?? re.exec(msg.html.replace(/&amp;/g, "&"));
    if (!m) throw new Error(`no ${prefix} link in “${msg.subject}”:\n${msg.text}`);
    return m[1];
  }

  return {
    port,
    messages,
    waitFor,
    linkIn,
    count: () => messages.length,
    stop: () => new Promise((r) => server.close(r)),
  };
}
