// The workspace's network settings as typed by people: an IP allowlist
// (addresses or CIDRs, one a line) and CORS origins (https://host[:port]).
// Checked here first so a typo is shown next to its line; the server checks
// again (engine/ipallow.go, engine/cors.go) and has the last word.

export const MAX_ALLOWLIST = 100;
export const MAX_CORS_ORIGINS = 20;

/** Lines (or commas) → trimmed, non-empty entries, without duplicates, comments (#…) dropped. */
export function splitList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[\n,]+/)) {
    const v = raw.replace(/#.*$/, "").trim();
    if (v && !out.includes(v)) out.push(v);
  }
  return out;
}

export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length < 2) return false;
  let head = s;
  let groupsForV4 = 0;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".")) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    head = s.slice(0, lastColon + 1) + "0:0";
    groupsForV4 = 0;
  }
  const dbl = head.split("::");
  if (dbl.length > 2) return false;
  const groups = (x: string) => (x === "" ? [] : x.split(":"));
  const left = groups(dbl[0]);
  const right = dbl.length === 2 ? groups(dbl[1]) : [];
  const all = [...left, ...right];
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  const n = all.length + groupsForV4;
  return dbl.length === 2 ? n < 8 : n === 8;
}

/** Why an allowlist entry is not an address or a CIDR, or "" when it is one. */
export function networkProblem(entry: string): string {
  const [addr, bits, ...rest] = entry.split("/");
  if (rest.length) return "has more than one “/”";
  const v4 = isIPv4(addr);
  const v6 = !v4 && isIPv6(addr);
  if (!v4 && !v6) return "is not an IPv4 or IPv6 address";
  if (bits === undefined) return "";
  if (!/^\d{1,3}$/.test(bits)) return "has a prefix length that is not a number";
  const max = v4 ? 32 : 128;
  if (Number(bits) > max) return `has a prefix length over ${max}`;
  return "";
}

export interface ListCheck {
  values: string[];
  errors: string[];
}

/** The allowlist's entries and a message per bad one ("line 2: 10.0.0.0/33 has a prefix length over 32"). */
export function checkAllowlist(text: string): ListCheck {
  const values = splitList(text);
  const errors: string[] = [];
  values.forEach((v) => {
    const p = networkProblem(v);
    if (p) errors.push(`${v} ${p}`);
  });
  if (values.length > MAX_ALLOWLIST) errors.push(`At most ${MAX_ALLOWLIST} networks.`);
  return { values, errors };
}

/** Whether an IPv4 address lies in a list entry (for the "includes you" hint; IPv4 only). */
export function ipv4InNetwork(ip: string, entry: string): boolean {
  if (!isIPv4(ip)) return false;
  const [addr, bits = "32"] = entry.split("/");
  if (!isIPv4(addr)) return false;
  const toInt = (a: string) => a.split(".").reduce((n, p) => n * 256 + Number(p), 0);
  const b = Number(bits);
  if (!(b >= 0 && b <= 32)) return false;
  if (b === 0) return true;
  const mask = 2 ** 32 - 2 ** (32 - b);
  return (toInt(ip) & mask) >>> 0 === (toInt(addr) & mask) >>> 0;
}

/** An origin as the server keeps it (scheme://host[:port], lower case), or "" when it is not one it accepts. */
export function normalizeOrigin(o: string): string {
  let u: URL;
  try {
    u = new URL(o.trim());
  } catch {
    return "";
  }
  if (!u.host || u.username || u.password || (u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) return "";
  const scheme = u.protocol.replace(/:$/, "").toLowerCase();
  const local = u.hostname === "localhost" || u.hostname === "127.0.0.1";
  if (scheme !== "https" && !(scheme === "http" && local)) return "";
  return `${scheme}://${u.host.toLowerCase()}`;
}

export function checkOrigins(text: string): ListCheck {
  const values: string[] = [];
  const errors: string[] = [];
  for (const v of splitList(text)) {
    const n = normalizeOrigin(v);
    if (!n) errors.push(`${v} is not an https origin such as https://app.example.com (no path)`);
    else if (!values.includes(n)) values.push(n);
  }
  if (values.length > MAX_CORS_ORIGINS) errors.push(`At most ${MAX_CORS_ORIGINS} origins.`);
  return { values, errors };
}
