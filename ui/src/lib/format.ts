// Small formatting helpers shared by the screens.

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return "?";
  const first = parts[0][0] ?? "";
  const last = parts.length > 1 ? (parts[parts.length - 1][0] ?? "") : "";
  return (first + last).toUpperCase();
}

// Intl formatters are costly to create: one of each is kept per locale (a board shows hundreds of dates).
const dateFormats = new Map<string, Intl.DateTimeFormat>();
function dateFormat(locale: string | undefined, withTime: boolean): Intl.DateTimeFormat {
  const k = `${locale ?? ""}|${withTime}`;
  let f = dateFormats.get(k);
  if (!f) {
    f = new Intl.DateTimeFormat(
      locale,
      withTime ? { month: "short", day: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit" } : { timeZone: "UTC", month: "short", day: "numeric", year: "numeric" },
    );
    dateFormats.set(k, f);
  }
  return f;
}

/** A due value (YYYY-MM-DD or RFC 3339) for display, in the viewer's locale. */
export function formatDue(due: string | null | undefined, locale?: string): string {
  if (!due) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(due)) {
    const [y, m, d] = due.split("-").map(Number);
    return dateFormat(locale, false).format(new Date(Date.UTC(y, m - 1, d)));
  }
  const t = new Date(due);
  return isNaN(t.getTime()) ? due : dateFormat(locale, true).format(t);
}

/** The date part (YYYY-MM-DD) of a due value, for a date input. */
export function dueDateInput(due: string | null | undefined): string {
  if (!due) return "";
  return due.slice(0, 10);
}

/** Whether a due date is before today (dates compare by calendar day, UTC). */
export function isOverdue(due: string | null | undefined, now = new Date()): boolean {
  if (!due) return false;
  const today = now.toISOString().slice(0, 10);
  if (due.length === 10) return due < today;
  return new Date(due).getTime() < now.getTime();
}

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

export function timeAgo(iso: string, now = Date.now()): string {
  const secs = Math.round((new Date(iso).getTime() - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(secs) >= size) return rtf.format(Math.round(secs / size), unit);
  }
  return "just now";
}

export function formatDateTime(iso: string): string {
  const t = new Date(iso);
  return isNaN(t.getTime()) ? iso : t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Relative luminance of #rrggbb (WCAG 2). */
export function luminance(hex: string): number {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex);
  if (!m) return 0;
  const n = parseInt(m[1], 16);
  const ch = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
}

export function contrastRatio(a: string, b: string): number {
  const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
}

/** The readable text colour (near-black or white) on a background colour. */
export function textOn(bg: string): string {
  return contrastRatio(bg, "#ffffff") >= contrastRatio(bg, "#111827") ? "#ffffff" : "#111827";
}

/** Mixes a colour towards black (amount > 0) or white (amount < 0), for hover and text variants. */
export function shade(hex: string, amount: number): string {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  const target = amount > 0 ? 0 : 255;
  const a = Math.abs(amount);
  const mix = (v: number) => Math.round(v + (target - v) * a);
  const r = mix((n >> 16) & 255), g = mix((n >> 8) & 255), b = mix(n & 255);
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

/** A colour dark enough to be read as text on white (≥ 4.5:1), derived from a brand colour. */
export function readableOnWhite(hex: string): string {
  let c = hex;
  for (let i = 0; i < 10 && contrastRatio(c, "#ffffff") < 4.5; i++) c = shade(c, 0.15);
  return c;
}

export function timezones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const list = intl.supportedValuesOf ? intl.supportedValuesOf("timeZone") : [];
  return list.includes("UTC") ? list : ["UTC", ...list];
}

export function browserTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

export function slugify(s: string): string {
  return s
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/g, "");
}

export function plural(n: number, one: string, many = one + "s"): string {
  return `${n} ${n === 1 ? one : many}`;
}
