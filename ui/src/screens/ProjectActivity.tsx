import { keys } from "../api/queries";
import { ActivityFeed } from "../components/ActivityFeed";
import { useProjectContext } from "./ProjectFrame";

export default function ProjectActivity() {
  const p = useProjectContext();
  return <ActivityFeed path={`/projects/${p.id}/activity`} queryKey={keys.projectActivity(p.id)} />;
}
