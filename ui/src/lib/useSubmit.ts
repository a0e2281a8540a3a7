import { useCallback, useState } from "react";
import { ApiError } from "../api/client";

/** Runs a form's async action and keeps its pending state and API error for display. */
export function useSubmit<A extends unknown[], R>(action: (...args: A) => Promise<R>) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(
    async (...args: A): Promise<R | undefined> => {
      setPending(true);
      setError(null);
      try {
        return await action(...args);
      } catch (e) {
        setError(e);
        return undefined;
      } finally {
        setPending(false);
      }
    },
    [action],
  );
  const fieldErrors = error instanceof ApiError ? error.fieldErrors() : {};
  const fieldError = (name: string) => fieldErrors[name];
  return { run, pending, error, setError, fieldError };
}
