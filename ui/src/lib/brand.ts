// Applies a workspace's branding to the UI through CSS variables.

import type { Branding } from "../api/types";
import { readableOnWhite, shade, textOn } from "./format";

export const DEFAULT_PRIMARY = "#4f46e5";
export const DEFAULT_ACCENT = "#f59e0b";

export function brandVariables(b?: Partial<Branding> | null): Record<string, string> {
  const primary = b?.primary_color || DEFAULT_PRIMARY;
  const accent = b?.accent_color || DEFAULT_ACCENT;
  return {
    "--brand-primary": primary,
    "--brand-primary-hover": shade(primary, 0.12),
    "--brand-on-primary": textOn(primary),
    "--brand-primary-text": readableOnWhite(primary),
    "--brand-accent": accent,
    "--brand-on-accent": textOn(accent),
  };
}

const STORE = "teamflow.branding";

/** Sets the brand variables, and remembers them so the next start paints in them at once. */
export function applyBranding(b?: Partial<Branding> | null, el: HTMLElement = document.documentElement): void {
  for (const [k, v] of Object.entries(brandVariables(b))) el.style.setProperty(k, v);
  try {
    if (b?.primary_color || b?.accent_color) localStorage.setItem(STORE, JSON.stringify({ primary_color: b.primary_color, accent_color: b.accent_color }));
    else localStorage.removeItem(STORE);
  } catch {
    /* storage unavailable: no memory, no harm */
  }
}

/** At start-up: the colours of the workspace seen last (not a secret: two colours). */
export function applyRememberedBranding(): void {
  try {
    const raw = localStorage.getItem(STORE);
    if (raw) applyBranding(JSON.parse(raw) as Partial<Branding>);
  } catch {
    /* ignore */
  }
}
