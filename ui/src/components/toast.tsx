// Toasts (Radix Toast): success notes and errors that belong to no field.

import * as Toast from "@radix-ui/react-toast";
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { Link } from "react-router";
import { ApiError, formatWait } from "../api/client";

export interface ToastInput {
  title: string;
  description?: string;
  variant?: "info" | "success" | "error";
  action?: { label: string; href: string };
}

interface ToastItem extends ToastInput {
  id: number;
}

interface ToastApi {
  toast: (t: ToastInput) => void;
  /** Shows an API error the right way: plan limits with an upgrade hint, 412 as "changed elsewhere". */
  toastError: (err: unknown, what?: string) => void;
}

const Ctx = createContext<ToastApi>({ toast: () => {}, toastError: () => {} });

export function describeError(err: unknown, what?: string): ToastInput {
  if (err instanceof ApiError) {
    if (err.isPlanLimit) {
      const d = err.details ?? {};
      return {
        variant: "error",
        title: "Plan limit reached",
        description: `The ${d.plan ?? "current"} plan allows ${d.max ?? "no more"} ${d.limit ?? "items"}. Upgrade the plan to add more.`,
        action: { label: "See plans", href: "/settings#plan" },
      };
    }
    if (err.status === 412 || err.code === "precondition_failed") {
      return { variant: "error", title: "Changed by someone else", description: "It was updated elsewhere since you opened it. The latest version is shown; please apply your change again." };
    }
    if (err.code === "network") return { variant: "error", title: "Offline?", description: err.message };
    if (err.isRateLimited) return { variant: "error", title: "Too many requests", description: err.retryAfter ? `Please wait ${formatWait(err.retryAfter)} and try again.` : "Please wait a moment and try again." };
    return { variant: "error", title: what ? `Could not ${what}` : "Something went wrong", description: err.message };
  }
  return { variant: "error", title: what ? `Could not ${what}` : "Something went wrong" };
}

export function ToastProvider({ children }: { children: ReactNode }) {
  const [items, setItems] = useState<ToastItem[]>([]);
  const toast = useCallback((t: ToastInput) => {
    setItems((xs) => [...xs.slice(-3), { ...t, id: Date.now() + Math.random() }]);
  }, []);
  const toastError = useCallback((err: unknown, what?: string) => toast(describeError(err, what)), [toast]);
  const api = useMemo(() => ({ toast, toastError }), [toast, toastError]);
  return (
    <Ctx.Provider value={api}>
      <Toast.Provider swipeDirection="right" duration={6000} label="Notification">
        {children}
        {items.map((t) => (
          <Toast.Root
            key={t.id}
            className="toast"
            data-variant={t.variant ?? "info"}
            type={t.variant === "error" ? "foreground" : "background"}
            onOpenChange={(open) => {
              if (!open) setItems((xs) => xs.filter((x) => x.id !== t.id));
            }}
          >
            <Toast.Title className="toast-title">{t.title}</Toast.Title>
            {t.description && <Toast.Description className="toast-description">{t.description}</Toast.Description>}
            {t.action ? (
              <Toast.Action className="toast-action" altText={t.action.label} asChild>
                <Link className="btn btn-small" to={t.action.href}>
                  {t.action.label}
                </Link>
              </Toast.Action>
            ) : (
              <Toast.Close className="toast-action btn-small" aria-label="Dismiss">
                ×
              </Toast.Close>
            )}
          </Toast.Root>
        ))}
        <Toast.Viewport className="toast-viewport" />
      </Toast.Provider>
    </Ctx.Provider>
  );
}

export function useToast(): ToastApi {
  return useContext(Ctx);
}
