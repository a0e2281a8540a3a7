// Live updates arrive with the collaboration issue's websocket. The hook is
// already called by the board and task screens so that turning the feature
// on is a change here only: subscribe, then invalidate the query keys that a
// server event names. Today it does nothing.

import { enabled } from "../features";

export interface LiveTopic {
  kind: "project" | "task";
  id: string;
}

export function useLive(_topic: LiveTopic | null): { present: string[] } {
  if (!enabled("realtime")) return { present: [] };
  return { present: [] };
}
