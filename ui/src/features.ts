// Capabilities that arrived with later API work. An entry that is off hides
// its nav entry and screen (no placeholder screens); all are on now.
//
// - search:        GET /api/v1/search (+ saved filters)      → nav "Search", route /search
// - notifications: GET /api/v1/notifications                 → nav "Inbox", route /inbox, unread badge in the top bar
// - realtime:      websocket /api/v1/ws                      → live query invalidation + presence avatars (see useLive in lib/live.ts)
// - mfa:           POST /api/v1/auth/mfa                     → second step of sign-in (on: components/MfaStep.tsx)
// - magicLink:     POST /api/v1/auth/magic-link              → "email me a link" on sign-in (on; hidden after a 409 mail_unavailable)
// - attachments:   /api/v1/tasks/{id}/attachments            → task detail section, recorded audio/video messages

export const features = {
  search: true,
  notifications: true,
  realtime: true,
  mfa: true,
  magicLink: true,
  attachments: true,
} as const;

export type Feature = keyof typeof features;

export function enabled(f: Feature): boolean {
  return features[f];
}
