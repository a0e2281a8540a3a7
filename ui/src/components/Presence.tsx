// Who else is looking at this board or task (live presence).

import { useMemberLookup } from "../api/queries";
import { Avatar } from "./ui";

export function Presence({ viewers, what }: { viewers: string[]; what: string }) {
  const { nameOf } = useMemberLookup();
  if (viewers.length === 0) return null;
  const names = viewers.map(nameOf);
  return (
    <div className="presence" data-testid="presence" aria-live="polite">
      <span className="avatar-stack" aria-hidden="true">
        {names.slice(0, 4).map((n, i) => (
          <Avatar key={viewers[i]} name={n} />
        ))}
      </span>
      <span>
        {names.length === 1 ? names[0] : names.length === 2 ? `${names[0]} and ${names[1]}` : `${names[0]} and ${names.length - 1} others`} {names.length === 1 ? "is" : "are"} also viewing this {what}
      </span>
    </div>
  );
}
