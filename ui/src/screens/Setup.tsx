import { useEffect } from "react";
import { Link, useSearchParams } from "react-router";
import { useSetupStatus } from "../api/queries";
import { ErrorState, Loading } from "../components/ui";
import { AuthFrame } from "./AuthFrame";
import { NewWorkspaceForm } from "./NewWorkspaceForm";

/** First run of an on-prem installation: /setup?token=… from the link the server printed. */
export default function Setup() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const setup = useSetupStatus();
  useEffect(() => {
    document.title = "Set up TeamFlow";
  }, []);
  let body;
  if (setup.isPending) body = <Loading />;
  else if (setup.isError) body = <ErrorState error={setup.error} retry={() => setup.refetch()} />;
  else if (!setup.data.needed)
    body = (
      <p className="notice">
        This installation is already set up. <Link to="/signin">Sign in</Link>.
      </p>
    );
  else if (!token)
    body = (
      <p className="notice notice-warn">
        Open the one-time setup link that <code>teamflow serve</code> printed when it started: it carries the setup token.
      </p>
    );
  else
    body = (
      <>
        <p className="muted">Create the first workspace and its Owner account. The setup link works once.</p>
        <NewWorkspaceForm endpoint="/setup" token={token} submitLabel="Finish setup" />
      </>
    );
  return <AuthFrame title="Set up TeamFlow">{body}</AuthFrame>;
}
