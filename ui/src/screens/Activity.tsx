import { useEffect } from "react";
import { keys } from "../api/queries";
import { ActivityFeed } from "../components/ActivityFeed";
import { useLive } from "../lib/live";

const WORKSPACE = { kind: "workspace", id: "" } as const;

export default function Activity() {
  // Follows the whole workspace while open: new entries appear by themselves.
  useLive(WORKSPACE);
  useEffect(() => {
    document.title = "Activity · TeamFlow";
  }, []);
  return (
    <>
      <div className="page-header">
        <h1>Activity</h1>
      </div>
      <p className="muted">Every change you can see in the workspace, newest first.</p>
      <ActivityFeed path="/activity" queryKey={keys.activity} />
    </>
  );
}
