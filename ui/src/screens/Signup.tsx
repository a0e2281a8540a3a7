import { useEffect } from "react";
import { Link } from "react-router";
import { useSetupStatus } from "../api/queries";
import { Loading } from "../components/ui";
import { AuthFrame } from "./AuthFrame";
import { NewWorkspaceForm } from "./NewWorkspaceForm";

export default function Signup() {
  const setup = useSetupStatus();
  useEffect(() => {
    document.title = "Create a workspace · TeamFlow";
  }, []);
  return (
    <AuthFrame title="Create your workspace">
      {setup.isPending ? (
        <Loading />
      ) : setup.data?.mode !== "cloud" ? (
        <p className="notice">
          Self-service signup is turned off on this installation. Ask its administrator for an invitation, or <Link to="/signin">sign in</Link>.
        </p>
      ) : (
        <NewWorkspaceForm endpoint="/signup" submitLabel="Create workspace" />
      )}
      <p className="auth-alt">
        Already have a workspace? <Link to="/signin">Sign in</Link>
      </p>
    </AuthFrame>
  );
}
